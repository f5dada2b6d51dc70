"""The ``dcal`` command: one sub-command per task, each implemented in ``dcal/commands/<name>.py``.

Every command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.  A module is
imported only when its command runs, so ``dcal data`` does not pay for importing the engine.
Errors a user can cause (:class:`dcal.errors.DCALError`) are printed as one line, without a
traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dcal.commands.json_output import json_mode
from dcal.errors import DCALError

COMMANDS = {
    "train": ("dcal.commands.train", "train a DCAL model (default: the synthetic FGVC demo on the CPU)"),
    "eval": ("dcal.commands.evaluate", "evaluate a checkpoint"),
    "ablate": ("dcal.commands.ablate", "train the paper's ablation variants over seeds and tabulate them"),
    "data": ("dcal.commands.data", "check a dataset download: images, classes or identities, cameras per split"),
    "demo-data": ("dcal.commands.demo_data", "write the synthetic FGVC or Re-ID dataset"),
    "visualize": ("dcal.commands.visualize", "draw attention rollout and GLCA selections over images"),
    "predict": ("dcal.commands.predict", "top-k classes for images"),
    "extract": ("dcal.commands.extract", "write features with identities, cameras and paths"),
    "search": ("dcal.commands.search", "rank a gallery (folder or extracted .npz) by similarity to query images"),
    "export": ("dcal.commands.export", "export the inference model (SA + GLCA) to ONNX"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``dcal``; only ``command``'s own arguments are added (and its module imported)."""
    parser = argparse.ArgumentParser(prog="dcal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        with json_mode(getattr(args, "json", False)):  # --json: the document alone on stdout
            return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except DCALError as error:
        print(f"dcal {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
