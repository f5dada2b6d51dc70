"""``dcal train [--config FILE] [--out DIR] [--resume [--allow-changes] | --overwrite] [--launcher L [--wait]] [key=value ...]``

With no arguments: the synthetic FGVC demo on the CPU (the set is written to ``data/demo-fgvc``
first if it is missing).  The run folder (default ``runs/<name>``) receives ``config.yaml``,
``metrics.jsonl``, ``tensorboard/`` and ``checkpoints/{last,best}.pt``
(:mod:`dcal.engine.run_folder`).

- A folder that already holds a run is refused: ``--resume`` continues it, ``--overwrite`` moves
  it aside to ``<name>.old-<time>`` and starts again.  A new run that fails before its first
  checkpoint (a dataset not downloaded yet) removes what it created, so the corrected command can
  start in the same folder.
- ``--resume`` continues from ``checkpoints/last.pt`` with the configuration the run is at (its
  checkpoint's), or ``--config``; ``key=value`` overrides apply on top.  Every setting that differs
  is listed; those that change what the run computes (model, data, optimiser, schedule, loss, seed,
  batch size) are refused unless ``--allow-changes``, which records them in
  ``config_changes.yaml`` with the step they took effect at (e.g. ``train.epochs=200`` to extend).
  A finished run is reported as finished and left unchanged.
- Ctrl-C or SIGTERM: the step in progress is finished and checkpointed, and one line says how to
  resume; the exit status is 128 + the signal number (130, 143).

Under ``torchrun --nproc_per_node=N`` the same command trains with DDP.  ``--launcher local|slurm``
submits the run as a job instead (:mod:`dcal.engine.cluster_job`; ``--wait`` waits for it).
"""

from __future__ import annotations

import argparse
import errno
import sys
from contextlib import nullcontext
from pathlib import Path

from dcal.config import apply_overrides, load_config
from dcal.data.input_config import with_input_config
from dcal.errors import ConfigError

WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: the synthetic FGVC demo; with --resume: the run's own)")
    parser.add_argument("--out", help="run folder (default: runs/<name>)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in the run folder from checkpoints/last.pt")
    start.add_argument("--overwrite", action="store_true",
                       help="start again in a run folder that holds a run (the earlier run is moved to <name>.old-<time>)")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: apply settings that change what the run computes (recorded in config_changes.yaml)")
    parser.add_argument("--launcher", choices=("inline", "local", "slurm"), default="inline",
                        help="inline: train in this process (default); local: as a job on this machine; slurm: as a "
                             "Slurm job with the config's slurm settings (both through submitit: pip install 'dcal[cluster]')")
    parser.add_argument("--wait", action="store_true", help="with --launcher local/slurm: wait for the job to end")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-4")


def run(args) -> int:
    # imported when the command runs: `dcal <command> --help` and argument errors come back at once
    import os

    from dcal.engine import run_folder

    if args.allow_changes and not args.resume:
        raise ConfigError("--allow-changes applies to --resume only")
    config = load_config(args.config, args.overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / config.name
    is_main = os.environ.get("RANK", "0") == "0"
    if args.resume:
        if run_folder.run_state(run_dir) == "absent":
            raise run_folder.RunFolderError(f"--resume: {run_dir} holds no run (no config.yaml, metrics.jsonl or "
                                            "checkpoints/); pass the run folder with --out")
        saved = run_folder.saved_config(run_dir)
        if args.config is None:
            config = apply_overrides(saved, args.overrides)
    elif args.overwrite:
        if is_main and run_folder.run_state(run_dir) != "absent":
            moved = run_folder.move_aside(run_dir)
            print(f"moved the earlier run in {run_dir} to {moved}", flush=True)
    else:
        run_folder.refuse_existing_run(run_dir)

    config.data.root = str(Path(config.data.root).expanduser().resolve())  # the saved config works from any folder
    config = with_input_config(config)  # the backbone's mean, std and interpolation, stored with the run
    if args.resume:
        differences = run_folder.config_differences(saved, config)
        run_folder.check_resume_changes(run_dir, differences, args.allow_changes)
        progress = run_folder.read_progress(run_dir)
        if progress is not None and progress.finished(config.train.epochs):
            if is_main:
                print(f"{run_dir} is finished ({progress.describe()}); nothing to do, nothing changed. "
                      "To train longer: --resume --allow-changes train.epochs=N", flush=True)
            return 0
        if differences and is_main:
            print("resuming with changed settings: "
                  + "; ".join(run_folder.format_change(k, *v) for k, v in differences.items()), flush=True)
    if args.launcher != "inline":  # the job trains in the run folder (dcal.engine.cluster_job)
        from dcal.engine.cluster_job import launch_run

        return launch_run(args.launcher, config, run_dir, wait=args.wait)
    from dcal.engine import distributed
    from dcal.errors import TrainingInterrupted
    from dcal.engine.trainer import train
    from dcal.evaluation.report import format_metrics

    context = distributed.setup(config.train.device, config.train.threads)
    if context.distributed and args.overwrite:  # every process waits until the main one moved the earlier run
        import torch.distributed

        torch.distributed.barrier()
    if context.is_main:
        print(f"run folder: {run_dir}", flush=True)
    starting = nullcontext() if args.resume or not context.is_main else run_folder.removed_if_start_fails(run_dir)
    try:
        try:
            with starting:
                metrics = train(config, run_dir, resume=args.resume, context=context).metrics
        except OSError as error:  # disk full, read-only folder, ...: one line naming the path
            if error.errno not in WRITE_ERRORS:
                raise
            raise run_folder.RunFolderError(f"cannot write {error.filename or run_dir}: {error.strerror}") from None
    except TrainingInterrupted as stopped:
        if context.is_main:
            print(f"dcal train: {stopped}", file=sys.stderr, flush=True)
        return distributed.finish(context, stopped.exit_code)
    except BaseException as error:
        if not context.distributed:
            raise
        distributed.abort(context, error)
    if context.is_main and metrics is not None:
        print(f"final ({config.task}, {run_dir}): {format_metrics(config.task, metrics)}", flush=True)
    return distributed.finish(context, 0)

