"""The run folder: which state a run is in, and the safe ways to start, replace or resume one.

A run folder (``--out``, default ``runs/<name>``) holds ``config.yaml`` (the configuration the run
started with, never rewritten), ``checkpoints/last.pt`` and ``best.pt``, ``metrics.jsonl``,
``tensorboard/`` and, once a resume applied changed settings (``--allow-changes``),
``config_changes.yaml``: one entry per resume with the optimiser step and epoch the changes took
effect at and each changed key's old and new value.

- :func:`run_state` tells an empty place from a finished or an unfinished run.
- :func:`removed_if_start_fails` clears what a new run's failed start created, so the corrected
  command can start in the same folder.
- :func:`move_aside` is what ``--overwrite`` does with an earlier run: it renames the folder to
  ``<name>.old-<UTC timestamp>`` next to it; nothing is deleted.
- :func:`config_differences` and :func:`check_resume_changes` compare a run's saved configuration
  with the one a resume asks for; :func:`record_changes` appends what a resume applied.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcal.atomic_write import write_atomically
from dcal.config import Config, config_from_dict, flat_settings, load_config, valid_keys
from dcal.engine.checkpoint import ARCHITECTURE_KEYS
from dcal.engine.train_state import TrainState
from dcal.errors import CheckpointError, RunFolderError, TrainingInterrupted
from dcal.model.torch_files import load_torch_file

CHANGES_FILE = "config_changes.yaml"
#: What marks a folder as holding a run.
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints")
#: Settings that do not change what a run computes: where and how fast it runs, how often it
#: evaluates, checkpoints and logs, extra test sets that never choose best.pt, recomputation in the
#: backward pass, compilation, the Slurm job's resources, the paper's figures, and the initial
#: weights (a resume takes every weight from its checkpoint).  A
#: resume may change them freely (they are still listed and recorded).
NEUTRAL_KEYS = frozenset({
    "name", "data.num_workers", "train.device", "train.threads", "train.eval_every",
    "train.checkpoint_every", "train.save_safetensors", "train.log_every", "eval.batch_size",
    "eval.datasets", "model.grad_checkpointing", "model.init_from", "train.compile",
    *(key for key in valid_keys() if key.split(".")[0] in ("slurm", "paper")),
})


@dataclass(frozen=True)
class Progress:
    """How far the run of a ``checkpoints/last.pt`` got, with the configuration it is at."""

    state: TrainState
    epochs: int  # train.epochs of the checkpoint's config
    config: dict

    def finished(self, epochs: int | None = None) -> bool:
        """Every epoch of ``epochs`` (default: the checkpoint's own train.epochs) trained and evaluated."""
        return self.state.finished(self.epochs if epochs is None else epochs)

    def describe(self) -> str:
        return self.state.describe(self.epochs)


def last_checkpoint(run_dir) -> Path:
    return Path(run_dir) / "checkpoints" / "last.pt"


def read_progress(run_dir) -> Progress | None:
    """The progress recorded in ``run_dir/checkpoints/last.pt``, or None when there is none.

    The checkpoint is memory-mapped, so its tensors are not read.
    """
    path = last_checkpoint(run_dir)
    if not path.is_file():
        return None
    checkpoint = load_torch_file(path, "checkpoint", mmap=True)
    state = TrainState.from_checkpoint(checkpoint, path)
    try:
        config = checkpoint["config"]
        return Progress(state, int(config["train"]["epochs"]), config)
    except (KeyError, TypeError, ValueError) as error:  # not a dcal checkpoint
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None


def run_state(run_dir) -> str:
    """``"absent"``, ``"finished"`` or ``"unfinished"``: whether ``run_dir`` holds a run, and if so
    whether ``checkpoints/last.pt`` completed every epoch of its configuration and its evaluation.

    A folder that exists but holds none of ``config.yaml``, ``metrics.jsonl``, ``checkpoints/`` is
    ``"absent"``; a run stopped before its first checkpoint, or whose ``last.pt`` cannot be read, is
    ``"unfinished"``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any((run_dir / name).exists() for name in RUN_FILES):
        return "absent"
    try:
        progress = read_progress(run_dir)
    except CheckpointError:
        return "unfinished"
    return "finished" if progress is not None and progress.finished() else "unfinished"


def describe_run(run_dir) -> str:
    try:
        progress = read_progress(run_dir)
    except CheckpointError:
        return f"{last_checkpoint(run_dir)} cannot be read"
    return "no checkpoint yet" if progress is None else progress.describe()


def refuse_existing_run(run_dir) -> None:
    """Raise :class:`RunFolderError` when ``run_dir`` already holds a run (naming ``--resume`` and ``--overwrite``)."""
    run_dir = Path(run_dir)
    state = run_state(run_dir)
    if state != "absent":
        raise RunFolderError(
            f"{run_dir} already holds {'a finished' if state == 'finished' else 'an unfinished'} run "
            f"({describe_run(run_dir)}); pass --resume to continue it, "
            f"or --overwrite to start again (the earlier run is moved to {run_dir.name}.old-<time>, not deleted)"
        )


def move_aside(run_dir) -> Path:
    """Rename ``run_dir`` to ``<name>.old-<UTC timestamp>`` beside it; returns the new path."""
    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target, n = run_dir.with_name(f"{run_dir.name}.old-{stamp}"), 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    try:
        run_dir.rename(target)
    except OSError as error:
        raise RunFolderError(f"--overwrite: cannot move {run_dir} to {target}: {error.strerror}") from None
    return target


def saved_config(run_dir) -> Config:
    """The configuration a run is at: its last checkpoint's (which carries changes applied on
    resume), else its ``config.yaml``."""
    progress = read_progress(run_dir)
    if progress is not None:
        return config_from_dict(progress.config, source=f"config stored in {last_checkpoint(run_dir)}")
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"--resume: {run_dir} has neither checkpoints/last.pt nor config.yaml")
    return load_config(path)


def config_differences(saved: Config, requested: Config) -> dict:
    """``{dotted key: (saved value, requested value)}`` for every setting on which the two differ."""
    a, b = flat_settings(saved), flat_settings(requested)
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


def check_resume_changes(run_dir, differences: dict, allow_changes: bool) -> None:
    """Refuse ``differences`` that change what the run computes unless ``allow_changes``.

    Architecture settings (a checkpoint's weights only fit its own) are refused even then.
    """
    architecture = [k for k in differences if k in ARCHITECTURE_KEYS]
    if architecture:
        raise RunFolderError(
            f"--resume {run_dir}: the checkpoint's weights only fit its own architecture; cannot change "
            + "; ".join(format_change(k, *differences[k]) for k in architecture)
        )
    computing = [k for k in differences if k not in NEUTRAL_KEYS]
    if computing and not allow_changes:
        raise RunFolderError(
            f"--resume {run_dir}: the requested config changes what the run computes: "
            + "; ".join(format_change(k, *differences[k]) for k in computing)
            + ". Resume without these changes, or pass --allow-changes to apply them from the checkpoint's step "
            f"(recorded in {Path(run_dir) / CHANGES_FILE})"
        )


def record_changes(run_dir, differences: dict, *, step: int, epoch: int) -> None:
    """Append the ``differences`` a resume applied, with the step and epoch they took effect at.

    Called when a resume starts from ``checkpoints/last.pt`` (at ``step``).  Entries of earlier
    resumes from that step whose changes never reached a checkpoint (the resume was interrupted
    before writing one, so ``last.pt`` still has the old values) are dropped first: an
    interrupted ``--allow-changes`` resume repeated is recorded once.
    """
    path = Path(run_dir) / CHANGES_FILE
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    entries = entries if isinstance(entries, list) else []
    progress = read_progress(run_dir)
    current = flat_settings(config_from_dict(progress.config)) if progress is not None else {}
    kept = [entry for entry in entries
            if entry.get("step", -1) < step
            or all(current.get(key) == change.get("to") for key, change in entry.get("changes", {}).items())]
    if differences:
        kept.append({"step": step, "epoch": epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "changes": {key: {"from": old, "to": new} for key, (old, new) in differences.items()}})
    if kept != entries:
        text = yaml.safe_dump(kept, sort_keys=False)
        write_atomically(path, lambda f: f.write(text.encode("utf-8")), CHANGES_FILE, RunFolderError)


def format_change(key: str, old, new) -> str:
    return f"{key} {old!r} -> {new!r}"


def check_writable(run_dir) -> None:
    """Create ``run_dir`` (and ``checkpoints/``) and check a file can be written there; else a
    one-line :class:`RunFolderError` naming the path and the problem."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} is a file, not a folder")
    probe = run_dir / "checkpoints" / f".write-test-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        where = error.filename or run_dir
        raise RunFolderError(f"cannot write the run folder {run_dir} ({where}): {error.strerror}") from None


@contextmanager
def removed_if_start_fails(run_dir):
    """Around a new run's start in ``run_dir``: if it fails before its first checkpoint (a dataset
    not downloaded yet, an unreadable image, a ``model.init_from`` file that does not fit), remove
    what it created — ``config.yaml``, an empty ``metrics.jsonl``, ``tensorboard/``, an empty
    ``checkpoints/``, the folder itself when it was made for the run and is empty — so that the
    corrected command starts there without ``--overwrite``.  Files that were there before are kept;
    an interrupted start (SIGINT, SIGTERM) is left to ``--resume``.
    """
    run_dir = Path(run_dir)
    before = set(os.listdir(run_dir)) if run_dir.is_dir() else None
    try:
        yield
    except TrainingInterrupted:
        raise
    except BaseException:
        if run_dir.is_dir() and not last_checkpoint(run_dir).exists():
            try:
                _remove_created(run_dir, before or set())
                if before is None and not any(run_dir.iterdir()):
                    run_dir.rmdir()
            except OSError:  # a read-only folder: what is there stays, the error below is the one to report
                pass
        raise


def _remove_created(run_dir: Path, before: set) -> None:
    metrics = run_dir / "metrics.jsonl"
    if "metrics.jsonl" not in before and metrics.is_file() and metrics.stat().st_size == 0:
        metrics.unlink()
    if "config.yaml" not in before:
        (run_dir / "config.yaml").unlink(missing_ok=True)
    if "tensorboard" not in before:
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    checkpoints = run_dir / "checkpoints"
    if "checkpoints" not in before and checkpoints.is_dir():
        remove_stale_temporaries(checkpoints)
        if not any(checkpoints.iterdir()):
            checkpoints.rmdir()


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files (``.<name>.tmp<pid>``) that a killed writer left in ``folder``.

    Files of a process that is still running are kept.
    """
    removed = []
    for path in Path(folder).glob(".*.tmp*"):
        pid = path.name.rpartition(".tmp")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True
