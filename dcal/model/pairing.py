"""Distractor pairs for PWCA (paper §3.3): a random permutation of the batch without fixed points."""

from __future__ import annotations

from typing import Optional

import torch

from dcal.errors import ConfigError


def derangement(n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` with no fixed point, as a LongTensor (n,).

    Entry i names the image paired with image i.  Drawn by rejection (a random permutation is a
    derangement with probability ≈ 1/e, so about e draws are needed).  ``n < 2`` raises a
    :class:`~dcal.errors.ConfigError`: a pair needs two images in the batch.
    """
    if n < 2:
        raise ConfigError(
            f"PWCA needs at least 2 images per batch to pair each with another one; got a batch of {n}"
        )
    identity = torch.arange(n)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not bool((perm == identity).any()):
            return perm
