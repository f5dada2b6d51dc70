"""Reading a ``torch.save`` file without running code, with one line saying what is wrong with it.

``torch.load(weights_only=True)`` refuses pickles of arbitrary objects (a file that would run code
when loaded), but its reasons are torch's multi-line texts, or nothing at all (an empty file raises
an ``EOFError`` with no message).  :func:`load_torch_file` turns each into a
:class:`~dcal.errors.CheckpointError` of one line naming the file.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from dcal.errors import CheckpointError


def load_torch_file(path, what: str = "checkpoint", **load_options):
    """``torch.load(path, map_location="cpu", weights_only=True, **load_options)``, or a one-line
    :class:`CheckpointError` starting with ``what`` and the path when the file cannot be read so."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder; give the file (a run's is <run>/checkpoints/last.pt)")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes); it was not written completely")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **load_options)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused:
            raise CheckpointError(
                f"{what} {path} holds Python objects beyond tensors and plain values ({refused.group(1)}); it is "
                "refused because loading it could run code (torch.load weights_only=True)") from None
        reason = str(error).partition("WeightsUnpickler error:")[2]
        raise CheckpointError(f"{what} {path} is not a file written by torch.save (its pickle stops at: "
                              f"{_first_line(reason) if reason.strip() else _first_line(error)})") from None
    except EOFError:
        raise CheckpointError(f"{what} {path} is truncated: it ends before its data does") from None
    except (KeyError, RuntimeError, ValueError, OSError) as error:  # not a torch.save file, a broken zip
        raise CheckpointError(
            f"{what} {path} is not a file written by torch.save ({type(error).__name__}: {_first_line(error)})"
        ) from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"
