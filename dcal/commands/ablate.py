"""``dcal ablate [--config FILE] [--seeds 0 1 2] [--variants a,b,...] [--out DIR] [key=value ...]``

Trains each ablation variant (:mod:`dcal.engine.ablation`: baseline, glca, pwca, dcal,
dcal_random by default; also dcal_last, dcal_cls) for each seed as an ordinary run in
``DIR/<variant>-s<seed>/`` (default ``DIR``: ``runs/<name>-ablation``), skipping finished runs
and resuming unfinished ones, then writes ``DIR/ablation.json`` and ``DIR/ablation.md``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: the synthetic FGVC demo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--variants", help="comma-separated variants (default baseline,glca,pwca,dcal,dcal_random; "
                                           "also dcal_last, dcal_cls)")
    parser.add_argument("--out", help="ablation folder (default runs/<name>-ablation)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every variant")


def run(args) -> int:
    # imported when the command runs: `dcal <command> --help` and argument errors come back at once
    from dcal.engine.ablation import markdown_table, parse_variants, run_ablation

    result = run_ablation(args.config, args.seeds, parse_variants(args.variants), args.out, args.overrides)
    print(markdown_table(result), end="", flush=True)
    return 0
