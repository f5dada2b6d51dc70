"""Per-branch heads (paper §4): a linear classifier for FGVC, a BNNeck for Re-ID.

Each head maps a branch's feature (B, D) to a dict with ``"feat"`` (the input feature) and
``"logits"`` (B, C); the BNNeck also returns ``"bn_feat"``, the feature after BatchNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn


class LinearHead(nn.Module):
    """FGVC classifier: ``logits = W·feat + b`` (timm's ViT head initialisation)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)
        trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"feat": feat, "logits": self.fc(feat)}


class BNNeckHead(nn.Module):
    """Re-ID BNNeck (Luo et al. 2019): feat → BatchNorm1d → bias-free linear classifier.

    As in the BNNeck paper (and TransReID), the BatchNorm's shift is frozen at 0 so that the
    post-BN feature used at inference stays centred; the classifier is drawn from N(0, 0.001²).
    The triplet loss uses ``"feat"``, cross-entropy uses ``"logits"``, retrieval uses ``"bn_feat"``.
    """

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: torch.Tensor, update_stats: bool = True) -> dict[str, torch.Tensor]:
        """``update_stats=False``: in training, normalise with the batch's statistics without
        updating the running ones (used for PWCA features, which never occur at inference)."""
        if self.training and not update_stats:
            bn = self.bn
            bn_feat = F.batch_norm(feat, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
        else:
            bn_feat = self.bn(feat)
        return {"feat": feat, "bn_feat": bn_feat, "logits": self.classifier(bn_feat)}


def head_prefixes(model: nn.Module) -> tuple:
    """The state-dict key prefixes (``"sa_head."``, ...) of ``model``'s heads: what differs between
    two models of one architecture trained on other classes or identities."""
    return tuple(f"{name}." for name, module in model.named_modules() if isinstance(module, (LinearHead, BNNeckHead)))
