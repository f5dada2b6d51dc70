"""A run's random state: seeds derived from a few integers, so that every random draw of a run is a
function of where it happens — ``(seed, rank)`` for a process, ``(seed, epoch, index)`` for an
image's augmentation, ``(seed, rank, step, micro-batch)`` for PWCA's distractors — and a resumed run
repeats them; and the generators' states as checkpoint-safe values."""

from __future__ import annotations

import random

import numpy as np
import torch


def mix_seed(*numbers: int) -> int:
    """A 63-bit seed from a few integers (splitmix-style), distinct for distinct tuples in practice."""
    value = 0x9E3779B97F4A7C15
    for n in numbers:
        value = (value ^ (int(n) + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & 0xFFFFFFFFFFFFFFFF
        value = (value * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return value >> 1


def seed_process(seed: int, rank: int) -> None:
    """Seed torch, numpy and python for process ``rank`` of a run seeded ``seed``."""
    process_seed = mix_seed(seed, rank)
    torch.manual_seed(process_seed)
    np.random.seed(process_seed % 2**32)
    random.seed(process_seed)


def rng_state() -> dict:
    """The random states of torch, numpy and python (and CUDA) as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
