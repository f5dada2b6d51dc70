"""Checks on the files a command is about to write: never over one of its own inputs, never where a
folder is (or, for a folder of outputs, where a file is), so a mistyped ``--out`` fails at once with
one line instead of destroying a checkpoint or an image, or failing after the work is done."""

from __future__ import annotations

import os
from pathlib import Path

from dcal.errors import ConfigError


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (after links and ``..``)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output_file(out, inputs: dict, flag: str = "--out") -> Path:
    """``out`` as a Path, or a :class:`ConfigError` if it is a folder, its folder is missing, or it
    is one of ``inputs`` (``{"checkpoint": path, ...}``; None values are ignored)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a folder; give the path of the file to write")
    for name, path in inputs.items():
        if path is not None and same_file(out, path):
            raise ConfigError(f"{flag} {out} is the {name} this command reads; writing it would destroy the input")
    if not out.parent.is_dir():
        raise ConfigError(f"{flag} {out}: the folder {out.parent} does not exist")
    return out


def check_output_folder(out, planned: list, inputs: list, flag: str = "--out") -> Path:
    """``out`` as a Path, or a :class:`ConfigError` if it is a file or one of the ``planned`` output
    paths is one of the ``inputs``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out} is a file; give a folder to write into")
    for path in planned:
        clash = next((source for source in inputs if same_file(path, source)), None)
        if clash is not None:
            raise ConfigError(f"{flag} {out}: the output {path} would overwrite the input image {clash}; "
                              "choose another folder")
    return out
