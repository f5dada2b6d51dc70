"""Distractor pairs for PWCA (paper §3.3): a random permutation of the batch without fixed points, or
a random image of another class or identity for each image (what training uses)."""

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


def distractor_index(targets: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """For each image, a random other image of the batch, of another class or identity where there is one.

    ``targets`` (B,) are the batch's labels; entry i of the result (LongTensor (B,)) names image i's
    PWCA distractor, drawn uniformly among the images whose label differs from image i's, or among
    all other images when every image of the batch shares image i's label.  A distractor then never
    shares the image's identity while the (micro-)batch holds two identities, whatever the number
    of processes a P×K batch is split over (an in-batch :func:`derangement` pairs 3 of 15 images
    with their own identity on a 4×4 micro-batch, against 3 of 63 on a 16×4 batch).  Unlike a
    derangement, an image may serve as the distractor of several images or of none.  ``B < 2``
    raises a :class:`~dcal.errors.ConfigError`.
    """
    n = len(targets)
    if n < 2:
        raise ConfigError(
            f"PWCA needs at least 2 images per batch to pair each with another one; got a batch of {n}"
        )
    targets = torch.as_tensor(targets).cpu()
    other = targets[:, None] != targets[None, :]
    allowed = torch.where(other.any(dim=1, keepdim=True), other, ~torch.eye(n, dtype=torch.bool))
    scores = torch.rand((n, n), generator=generator).masked_fill_(~allowed, -1.0)
    return scores.argmax(dim=1)
