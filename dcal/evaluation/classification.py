"""Top-k accuracy for fine-grained categorisation."""

from __future__ import annotations

import torch


def topk_correct(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict:
    """Per ``k``, a bool tensor (N,) saying whether the target is among the ``k`` highest scores.

    ``k`` larger than the number of classes counts every image as correct.
    """
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = top == targets[:, None]
    return {k: hits[:, :k].any(dim=1) for k in ks}


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict:
    """Per ``k``, the percentage of images whose target is among the ``k`` highest scores."""
    return {k: 100.0 * hit.double().mean().item() for k, hit in topk_correct(scores, targets, ks).items()}
