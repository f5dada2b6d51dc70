"""``dcal ablate [--config FILE ...] [--backbones A,B] [--seeds 0 1 2] [--variants a,b,...] [--out DIR]
[--launcher inline|local|slurm] [--jobs N] [--wait] [key=value ...]``

Trains each ablation variant (:mod:`dcal.engine.ablation`: baseline, glca, pwca, dcal,
dcal_random by default; also dcal_last, dcal_cls) for each seed as an ordinary run in
``DIR/<variant>-s<seed>/`` (default ``DIR``: ``runs/<name>-ablation``), skipping finished runs
and resuming unfinished ones, then writes ``DIR/ablation.json`` and ``DIR/ablation.md``.

- Several configs or ``--backbones``: one ablation per (config, backbone) in
  ``DIR/<name>-<backbone>/`` (default ``DIR``: ``runs/ablation-table``, default variants baseline
  and dcal), and the paper-shaped table of all of them in ``DIR/paper_table.{md,json}``
  (:mod:`dcal.engine.paper_table`).
- ``--launcher local|slurm`` submits the runs as jobs and returns; run the same command again to
  collect them, or pass ``--wait`` (:mod:`dcal.engine.ablation_jobs`).  ``--jobs N``: at most N runs
  at once; with the default launcher it runs them as local jobs and waits.
- Ctrl-C or SIGTERM: the runs in progress are checkpointed; the exit status is 128 + the signal
  number, and one line gives the command that continues the whole ablation.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", help="YAML config; repeat it for a table of several "
                                                          "(default: the synthetic FGVC demo)")
    parser.add_argument("--backbones", help="comma-separated timm backbones, each ablated on every config "
                                            "(e.g. deit_tiny_patch16_224.fb_in1k,deit_small_patch16_224.fb_in1k)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--variants", help="comma-separated variants (default baseline,glca,pwca,dcal,dcal_random, or "
                                           "baseline,dcal for a table of several configs or backbones; "
                                           "also dcal_last, dcal_cls)")
    parser.add_argument("--out", help="ablation folder (default runs/<name>-ablation, or runs/ablation-table)")
    parser.add_argument("--launcher", choices=("inline", "local", "slurm"), default="inline",
                        help="inline: train here, one run after another (default); local/slurm: submit each run as "
                             "a job through submitit (pip install 'dcal[cluster]') and return")
    parser.add_argument("--jobs", type=int, help="at most N runs at once (default launcher: run N local jobs and wait; "
                                                 "on a GPU machine each local job gets one GPU)")
    parser.add_argument("--wait", action="store_true", help="with --launcher local/slurm: wait for every job, then collect")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every variant")


def run(args) -> int:
    from dcal.config import load_config
    from dcal.engine import paper_table
    from dcal.engine.ablation import markdown_table, parse_variants, plan_ablation, run_ablation
    from dcal.engine.interrupts import signal_name
    from dcal.errors import ConfigError, TrainingInterrupted
    from dcal.evaluation.paper_figures import backbone_key

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    launcher, wait = args.launcher, args.wait
    if launcher == "inline" and (args.jobs or 1) > 1:
        launcher, wait = "local", True
    configs = args.config or [None]
    backbones = [name.strip() for name in args.backbones.split(",") if name.strip()] if args.backbones else [None]
    table = len(configs) > 1 or args.backbones is not None
    variants = parse_variants(args.variants or ("baseline,dcal" if table else None))
    out_root = Path(args.out) if args.out else Path("runs") / "ablation-table"
    plans = []
    for config_path in configs:
        for backbone in backbones:
            overrides = [*args.overrides, *([f"model.backbone={backbone}"] if backbone else [])]
            out = args.out
            if table:
                name = load_config(config_path, overrides).name
                out = out_root / (f"{name}-{backbone_key(backbone)}" if backbone else name)
            plans.append((backbone, config_path, overrides, out))
    ablations = [plan_ablation(path, args.seeds, variants, out, overrides) for _, path, overrides, out in plans]
    try:
        if launcher == "inline":
            results = [run_ablation(path, args.seeds, variants, out, overrides) for _, path, overrides, out in plans]
        else:
            from dcal.engine.ablation_jobs import launch_ablation

            results = launch_ablation(ablations, launcher, args.jobs, wait)
    except (TrainingInterrupted, KeyboardInterrupt) as stopped:
        signum = getattr(stopped, "signum", 2)
        where = ("the cluster's jobs keep running" if launcher == "slurm" else
                 "the runs in progress are checkpointed")
        print(f"dcal ablate: interrupted by {signal_name(signum)}; {where}; continue the ablation with: "
              f"{continue_command(args, ablations[0].out_dir if not table else out_root)}", file=sys.stderr, flush=True)
        return 128 + signum
    for ablation, result in zip(ablations, results):
        if table:
            print(f"\n{ablation.out_dir}:")
        print(markdown_table(result), end="", flush=True)
    failed = [name for result in results for name, job in result.get("pending", {}).items() if job["state"] == "failed"]
    if table:
        tables = paper_table.paper_table([(backbone_key(backbone or ablation.runs[0].config.model.backbone), ablation,
                                           result) for (backbone, *_), ablation, result in zip(plans, ablations, results)])
        paper_table.write_table(tables, out_root)
        print("\n" + paper_table.markdown(tables), end="", flush=True)
    if failed:
        print(f"dcal ablate: the job of {', '.join(failed)} failed (its last error line is in ablation.md); "
              "run the command again to resubmit", file=sys.stderr, flush=True)
        return 1
    return 0


def continue_command(args, out_dir) -> str:
    """The ``dcal ablate`` command that continues this ablation (paths shell-quoted)."""
    words = ["dcal", "ablate"]
    for config in args.config or ():
        words += ["--config", config]
    if args.backbones:
        words += ["--backbones", args.backbones]
    words += ["--seeds", *map(str, args.seeds)]
    if args.variants:
        words += ["--variants", args.variants]
    words += ["--out", str(out_dir)]
    if args.launcher != "inline":
        words += ["--launcher", args.launcher]
    if args.jobs is not None:
        words += ["--jobs", str(args.jobs)]
    if args.wait:
        words.append("--wait")
    return shlex.join([*words, *args.overrides])
