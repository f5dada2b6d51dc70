"""The ``dcal`` command: one sub-command per task, each implemented in ``dcal/commands/<name>.py``.

Every command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.  A module is
imported only when its command runs, so ``dcal data`` does not pay for importing the engine, and
its ``run`` imports torch and the engine inside, so ``dcal <command> --help`` and argument errors
come back at once.
Errors a user can cause (:class:`dcal.errors.DCALError`) are printed as one line, without a
traceback, and exit with status 2; warnings are printed as one line each, once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dcal.commands.json_output import json_mode
from dcal.commands.warning_lines import warnings_as_lines
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


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``dcal`` and its list of commands (each command parses its own arguments)."""
    parser = argparse.ArgumentParser(prog="dcal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``dcal COMMAND ...``.  A command's options and its positional arguments
    (``key=value`` overrides, images) may come in any order (``parse_intermixed_args``)."""
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command is None:  # --help, an unknown command, or none
        return build_parser().parse_args(argv)
    module_name, help_text = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"dcal {command}", description=help_text)
    importlib.import_module(module_name).add_arguments(parser)
    args = parser.parse_intermixed_args(argv[1:])
    args.command = command
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_arguments(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        # --json: the document alone on stdout; warnings: one line each, once
        with json_mode(getattr(args, "json", False)), warnings_as_lines(args.command):
            return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except DCALError as error:
        print(f"dcal {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
