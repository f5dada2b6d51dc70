"""The inputs of the Re-ID evaluation: features, identities, cameras and distances as tensors,
checked with an :class:`~dcal.errors.EvaluationError` that names the argument; and how many
queries one chunk holds in the working memory (:func:`memory_budget`, :func:`resolve_chunk_size`)."""

from __future__ import annotations

import numpy as np
import torch

from dcal.errors import EvaluationError

#: Working memory one query chunk may use, in bytes; it sets the default chunk size.
MEMORY_BUDGET = 512 * 2**20
#: Bytes held per query-gallery pair while a chunk is evaluated, at worst (every item ranked
#: before the hardest true match): the distance (4), a mask (1), the item's index (8), row (8),
#: distance (4), bin (8) and float intermediate (4), the histogram (1).
BYTES_PER_PAIR = 40


def as_tensor(name: str, array, ndim: int, device=None) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (default: the CPU)."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach().to(device or "cpu")
    else:
        try:
            numbers = np.asarray(array)
        except (TypeError, ValueError) as error:  # ragged lists, ...
            raise EvaluationError(f"{name} is not an array of numbers: {error}") from None
        if numbers.dtype.kind not in "biufc":  # strings, objects, dates: no number to rank by
            raise EvaluationError(f"{name} must hold numbers (integers for identities and cameras), "
                                  f"got dtype {numbers.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(numbers)).to(device or "cpu")
    if tensor.ndim != ndim:
        raise EvaluationError(f"{name} must have {ndim} dimension(s), got shape {tuple(tensor.shape)}")
    return tensor


def as_features(name: str, array) -> torch.Tensor:
    """Features as a 2-D float32 (float64 if given so) CPU tensor, without copying when possible.

    NaN features are caught later, as NaN distances, without a pass over the features here.
    """
    features = as_tensor(name, array, 2)
    if features.dtype not in (torch.float32, torch.float64):
        features = features.to(torch.float32)
    return features


def check_features(qf: torch.Tensor, gf: torch.Tensor) -> None:
    """Both feature sets non-empty and of the same dimension."""
    if len(qf) == 0:
        raise EvaluationError("the query set is empty (qf has 0 rows)")
    if len(gf) == 0:
        raise EvaluationError("the gallery is empty (gf has 0 rows)")
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationError(
            f"query and gallery features differ in dimension: qf has {qf.shape[1]}, gf has {gf.shape[1]}"
        )


def labels_of(name: str, array) -> torch.Tensor:
    labels = as_tensor(name, array, 1)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise EvaluationError(f"{name} must hold integers, got dtype {labels.dtype}")
    return labels.to(torch.int64)


def check_lengths(**named: int) -> None:
    if len(set(named.values())) > 1:
        listed = ", ".join(f"{name} has {length}" for name, length in named.items())
        raise EvaluationError(f"lengths do not match: {listed}")


def memory_budget(device=None) -> int:
    """Bytes one query chunk may use on ``device``: :data:`MEMORY_BUDGET` on the CPU; on CUDA a third
    of the memory the device has free now (``torch.cuda.mem_get_info``), at least 64 MiB."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 3, 64 * 2**20)
    return MEMORY_BUDGET


def resolve_chunk_size(chunk_size, num_gallery: int, bytes_per_pair: int = BYTES_PER_PAIR,
                       budget: int = MEMORY_BUDGET) -> int:
    """``chunk_size`` checked, or if None the number of queries whose pairs fit ``budget`` bytes."""
    if chunk_size is None:
        return max(1, budget // (bytes_per_pair * max(1, num_gallery)))
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise EvaluationError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return int(chunk_size)
