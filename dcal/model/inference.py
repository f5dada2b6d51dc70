"""What a trained DCAL model outputs at inference (paper §3.4, "Inference"), defined once.

PWCA is gone at inference.  Every consumer — ``model(x)`` in eval mode, ``dcal eval``,
``predict``, ``extract``, ``visualize``, ``search`` and the ONNX export — calls these functions, so
no two of them can disagree.

- FGVC: class scores = softmax(SA logits) + softmax(GLCA logits) (the SA softmax alone without
  GLCA), so each image's scores sum to 2 with GLCA.
- Re-ID: concat(SA feature, GLCA feature) — "concat two final class tokens of SA and GLCA" —
  taken before the BNNeck (``neck_feat="before"``, as TransReID tests) or after it (``"after"``),
  then L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dcal.errors import ConfigError

NECK_FEATS = ("before", "after")
"""The values of ``neck_feat`` (config ``model.neck_feat``)."""


def fgvc_scores(branches: dict) -> torch.Tensor:
    """softmax(SA logits) + softmax(GLCA logits), (B, C), from ``forward_branches`` output."""
    scores = branches["sa"]["logits"].float().softmax(dim=-1)
    if "glca" in branches:
        scores = scores + branches["glca"]["logits"].float().softmax(dim=-1)
    return scores


def reid_features(branches: dict, neck_feat: str = "before", normalize: bool = True) -> torch.Tensor:
    """concat(SA, GLCA) features, (B, D) or (B, 2D), before or after the BNNecks, L2-normalised
    unless ``normalize=False`` (test-time flip adds the two views' features first)."""
    if neck_feat not in NECK_FEATS:
        raise ConfigError(f"neck_feat must be one of {', '.join(NECK_FEATS)}; got {neck_feat!r}")
    key = "feat" if neck_feat == "before" else "bn_feat"
    features = torch.cat([branches[b][key] for b in ("sa", "glca") if b in branches], dim=1)
    return F.normalize(features, dim=1) if normalize else features
