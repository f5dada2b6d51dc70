"""How ``dcal train`` starts: the run folder's state decided once, and the configuration resolved once.

:func:`prepare_run` looks at the run folder (:func:`dcal.engine.run_folder.run_state`: absent,
unfinished or finished) and applies the command's choice: a new run (a folder holding a run is
refused), ``--overwrite`` (the earlier run moved aside) or ``--resume`` (the run's own
configuration, or ``--config``, with the overrides on top; settings that change what the run
computes refused unless ``--allow-changes``; a finished run left as it is).  The configuration it
returns is the one the run trains with: its data root absolute and the backbone's input statistics
filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcal.config import Config, apply_overrides, load_config
from dcal.data.input_config import with_input_config
from dcal.engine import run_folder
from dcal.errors import ConfigError, RunFolderError


@dataclass
class RunStart:
    """What :func:`prepare_run` decided: the configuration, the run folder, and whether there is
    anything to train (``finished``: a resumed run that is done)."""

    config: Config
    run_dir: Path
    resume: bool
    finished: bool = False


def prepare_run(config_file: str | None, overrides, out: str | None, *, resume: bool = False, overwrite: bool = False,
                allow_changes: bool = False, is_main: bool = True) -> RunStart:
    """The :class:`RunStart` of ``dcal train`` with these arguments; messages are printed when ``is_main``."""
    if allow_changes and not resume:
        raise ConfigError("--allow-changes applies to --resume only")
    config = load_config(config_file, overrides)
    run_dir = Path(out) if out else Path("runs") / config.name
    saved = None
    if resume:
        if run_folder.run_state(run_dir) == "absent":
            raise RunFolderError(f"--resume: {run_dir} holds no run (no config.yaml, metrics.jsonl or "
                                 "checkpoints/); pass the run folder with --out")
        saved = run_folder.saved_config(run_dir)
        if config_file is None:
            config = apply_overrides(saved, overrides)
    elif overwrite:
        if is_main and run_folder.run_state(run_dir) != "absent":
            moved = run_folder.move_aside(run_dir)
            print(f"moved the earlier run in {run_dir} to {moved}", flush=True)
    else:
        run_folder.refuse_existing_run(run_dir)
    config.data.root = str(Path(config.data.root).expanduser().resolve())  # the saved config works from any folder
    config = with_input_config(config)  # the backbone's mean, std and interpolation, stored with the run
    start = RunStart(config, run_dir, resume)
    if resume:
        start.finished = _check_resume(run_dir, saved, config, allow_changes, is_main)
    return start


def _check_resume(run_dir: Path, saved: Config, config: Config, allow_changes: bool, is_main: bool) -> bool:
    """Refuse or announce the changed settings of a resume; True when the run is finished already."""
    differences = run_folder.config_differences(saved, config)
    run_folder.check_resume_changes(run_dir, differences, allow_changes)
    progress = run_folder.read_progress(run_dir)
    if progress is not None and progress.finished(config.train.epochs):
        if is_main:
            print(f"{run_dir} is finished ({progress.describe()}); nothing to do, nothing changed. "
                  "To train longer: --resume --allow-changes train.epochs=N", flush=True)
        return True
    if differences and is_main:
        print("resuming with changed settings: "
              + "; ".join(run_folder.format_change(k, *v) for k, v in differences.items()), flush=True)
    return False
