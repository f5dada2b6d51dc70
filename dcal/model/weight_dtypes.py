"""The element types of a weights file against the model's: refuse what would silently corrupt it.

``load_state_dict`` copies any tensor into a parameter of any dtype, so an ``int32`` file loads into
``float32`` weights truncated to integers, and the run trains from near-zero weights without a
word.  :func:`fit_dtypes` is applied before every load of a file's tensors (``model.pretrained``,
``model.init_from``, a checkpoint given to any command): a non-floating tensor where the model has a
floating one (or a complex one anywhere) raises :class:`~dcal.errors.CheckpointError` naming the
tensors and dtypes; a floating tensor of another precision (``float16``, ``bfloat16``, ``float64``)
is converted to the model's dtype and listed, so the caller can say so.
"""

from __future__ import annotations

import warnings

import torch

from dcal.errors import CheckpointError


#: How many keys an error message names before it counts the rest.
SHOWN_KEYS = 12


def key_names(keys: list[str]) -> str:
    """The first :data:`SHOWN_KEYS` of ``keys`` for a message, and how many there are in all."""
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else "")


def fit_dtypes(expected: dict, state: dict, what: str) -> tuple[dict, list[str]]:
    """``(state converted to expected's dtypes, ["key float16 -> float32", ...])`` for the keys both
    hold; a :class:`CheckpointError` starting with ``what`` when a conversion would lose the values."""
    converted, refused, fitted = [], [], dict(state)
    for key, target in expected.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype == target.dtype:
            continue
        if (target.is_floating_point() and not value.is_floating_point()) or value.is_complex():
            refused.append(f"{key} ({_name(value.dtype)}, model {_name(target.dtype)})")
            continue
        fitted[key] = value.to(target.dtype)
        if value.is_floating_point():  # integer counters (BatchNorm's num_batches_tracked) need no word
            converted.append(f"{key} {_name(value.dtype)} -> {_name(target.dtype)}")
    if refused:
        raise CheckpointError(
            f"{what}: {len(refused)} tensors are not floating point where the model's are — {key_names(refused)}; "
            "loading them would truncate the weights to integers. Use a file of the model's weights as saved "
            "(float32, float16 or bfloat16)"
        )
    return fitted, converted


class WeightsConvertedWarning(UserWarning):
    """A weights file's floating tensors were converted to the model's precision."""


def warn_conversions(converted: list[str], what: str) -> None:
    """A :class:`WeightsConvertedWarning` naming the converted tensors (none when nothing was)."""
    if converted:
        warnings.warn(f"{what}: converted {len(converted)} tensors to the model's dtype ({key_names(converted)})",
                      WeightsConvertedWarning, stacklevel=3)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
