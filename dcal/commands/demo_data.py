"""``dcal demo-data --task fgvc|reid --out DIR [--seed N]``: write a synthetic dataset.

FGVC: CUB-200-2011's layout (read it with ``--dataset cub200``); Re-ID: Market-1501's layout
(``--dataset market1501``).  Prints the dataset root.
"""

from __future__ import annotations

import argparse
import shlex


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=("fgvc", "reid"))
    parser.add_argument("--out", required=True, help="folder to write into (synthetic_fgvc/ or synthetic_reid/ is created)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from dcal.data.synthetic import SYNTHETIC_LAYOUT, write_synthetic

    root = write_synthetic(args.task, args.out, {"seed": args.seed})
    print(root)
    print(f"read it with: dcal data --dataset {SYNTHETIC_LAYOUT[args.task]} --root {shlex.quote(str(root))}")
    return 0
