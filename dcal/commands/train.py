"""``dcal train [--config FILE] [--out DIR] [--resume [--allow-changes] | --overwrite] [--launcher L [--wait]] [key=value ...]``

With no arguments: the synthetic FGVC demo on the CPU (the set is written to ``data/demo-fgvc``
first if it is missing).  The run folder (default ``runs/<name>``) receives ``config.yaml``,
``metrics.jsonl``, ``tensorboard/`` and ``checkpoints/{last,best}.pt``
(:mod:`dcal.engine.run_folder`); :mod:`dcal.engine.run_start` decides how the run starts.

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
    import os

    from dcal.engine.run_start import prepare_run

    is_main = os.environ.get("RANK", "0") == "0"
    start = prepare_run(args.config, args.overrides, args.out, resume=args.resume, overwrite=args.overwrite,
                        allow_changes=args.allow_changes, is_main=is_main)
    if start.finished:
        return 0
    if args.launcher != "inline":  # the job trains in the run folder (dcal.engine.cluster_job)
        from dcal.engine.cluster_job import launch_run

        return launch_run(args.launcher, start.config, start.run_dir, wait=args.wait)
    return _train_here(start, overwrite=args.overwrite)


def _train_here(start, overwrite: bool) -> int:
    """Train in this process (under torchrun: in each), mapping failures to one line and an exit status."""
    from dcal.engine import distributed, run_folder
    from dcal.engine.trainer import train
    from dcal.errors import RunFolderError, TrainingInterrupted
    from dcal.evaluation.report import format_metrics

    config, run_dir = start.config, start.run_dir
    context = distributed.setup(config.train.device, config.train.threads)
    if context.distributed and overwrite:  # every process waits until the main one moved the earlier run
        import torch.distributed

        torch.distributed.barrier()
    if context.is_main:
        print(f"run folder: {run_dir}", flush=True)
    starting = nullcontext() if start.resume or not context.is_main else run_folder.removed_if_start_fails(run_dir)
    try:
        try:
            with starting:
                metrics = train(config, run_dir, resume=start.resume, context=context).metrics
        except OSError as error:  # disk full, read-only folder, ...: one line naming the path
            if error.errno not in WRITE_ERRORS:
                raise
            raise RunFolderError(f"cannot write {error.filename or run_dir}: {error.strerror}") from None
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
