"""Seeds derived from a few integers, so that every random draw of a run is a function of where it
happens — ``(seed, rank)`` for a process, ``(seed, epoch, index)`` for an image's augmentation,
``(seed, rank, step, micro-batch)`` for PWCA's distractors — and a resumed run repeats them."""

from __future__ import annotations


def mix_seed(*numbers: int) -> int:
    """A 63-bit seed from a few integers (splitmix-style), distinct for distinct tuples in practice."""
    value = 0x9E3779B97F4A7C15
    for n in numbers:
        value = (value ^ (int(n) + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & 0xFFFFFFFFFFFFFFFF
        value = (value * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return value >> 1
