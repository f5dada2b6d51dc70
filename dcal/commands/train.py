"""``dcal train [--config FILE] [--out DIR] [--resume] [key=value ...]``

With no arguments: the synthetic FGVC demo on the CPU (the set is written to ``data/demo-fgvc``
first if it is missing).  The run folder (default ``runs/<name>``) receives ``config.yaml``,
``metrics.jsonl``, ``tensorboard/`` and ``checkpoints/{last,best}.pt``.  ``--resume`` continues
from ``checkpoints/last.pt`` of the run folder, with the run folder's ``config.yaml`` unless
``--config`` is given (``key=value`` overrides apply on top, e.g. ``train.epochs=200`` to extend).
Under ``torchrun --nproc_per_node=N`` the same command trains with DDP.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dcal.config import load_config
from dcal.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: the synthetic FGVC demo)")
    parser.add_argument("--out", help="run folder (default: runs/<name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints/last.pt")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-4")


def run(args) -> int:
    config = load_config(args.config, args.overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / config.name
    if args.resume:
        last = run_dir / "checkpoints" / "last.pt"
        if not last.is_file():
            raise ConfigError(f"--resume: {last} not found (is {run_dir} the run folder? pass it with --out)")
        if args.config is None:
            config = load_config(run_dir / "config.yaml", args.overrides)

    config.data.root = str(Path(config.data.root).expanduser().resolve())  # the saved config works from any folder
    from dcal.engine import distributed
    from dcal.engine.trainer import format_metrics, train

    context = distributed.setup(config.train.device, config.train.threads)
    if context.is_main:
        print(f"run folder: {run_dir}", flush=True)
    try:
        metrics = train(config, run_dir, resume=args.resume, context=context).metrics
    except BaseException as error:
        if not context.distributed:
            raise
        distributed.abort(context, error)
    if context.is_main and metrics is not None:
        print(f"final ({config.task}, {run_dir}): {format_metrics(config.task, metrics)}", flush=True)
    return distributed.finish(context, 0)
