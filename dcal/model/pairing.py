"""Distractor pairs for PWCA (paper §3.3): for each image of a batch, the image I2 whose keys and
values its second stream attends to.

The paper's ablation of PWCA's pairs finds that image pairs drawn "from the same dataset (i.e., natural
distribution of the dataset)" work better than intra-class pairs only, inter-class pairs only, or an
equal mix of the two.  Training therefore draws each image's distractor uniformly among the other
images of its (micro-)batch (``rule="random"``); ``rule="other"`` keeps to images of another class
or identity, the inter-class-only variant, for comparison.
"""

from __future__ import annotations

from typing import Optional

import torch

from dcal.errors import ConfigError

DISTRACTOR_RULES = ("random", "other")
"""The distractor rules of :func:`distractor_index` (config ``train.pwca_distractor``)."""


def _require_pair(n: int) -> None:
    if n < 2:
        raise ConfigError(
            f"PWCA needs at least 2 images per batch to pair each with another one; got a batch of {n}"
        )


def derangement(n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` with no fixed point, as a LongTensor (n,).

    Entry i names the image paired with image i.  Drawn by rejection (a random permutation is a
    derangement with probability ≈ 1/e, so about e draws are needed).  ``n < 2`` raises a
    :class:`~dcal.errors.ConfigError`: a pair needs two images in the batch.
    """
    _require_pair(n)
    identity = torch.arange(n)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not bool((perm == identity).any()):
            return perm


def distractor_index(targets: torch.Tensor, generator: Optional[torch.Generator] = None, rule: str = "random") -> torch.Tensor:
    """For each image of a batch, the index of its PWCA distractor (LongTensor (B,)).

    ``targets`` (B,) are the batch's class or identity labels.  Each image draws independently, so an
    image may be the distractor of several images or of none.

    - ``rule="random"`` (the paper's natural distribution): uniformly among the batch's other images,
      whatever their labels.  On a P×K batch of identities a distractor then shares the image's
      identity with probability (K−1)/(PK−1): 3/63 for 16×4, and 3/15 when DDP splits that batch
      into 4×4 micro-batches per process, since each process pairs within its own micro-batch.
    - ``rule="other"``: uniformly among the images of another label, or among all other images when
      every image of the batch shares image i's label (never the same identity while a micro-batch
      holds two).

    ``B < 2`` raises a :class:`~dcal.errors.ConfigError`, and so does an unknown ``rule``.
    """
    if rule not in DISTRACTOR_RULES:
        raise ConfigError(f"PWCA distractor rule must be one of {', '.join(DISTRACTOR_RULES)}; got {rule!r}")
    n = len(targets)
    _require_pair(n)
    allowed = ~torch.eye(n, dtype=torch.bool)
    if rule == "other":
        targets = torch.as_tensor(targets).cpu()
        other = targets[:, None] != targets[None, :]
        allowed = torch.where(other.any(dim=1, keepdim=True), other, allowed)
    scores = torch.rand((n, n), generator=generator).masked_fill_(~allowed, -1.0)
    return scores.argmax(dim=1)
