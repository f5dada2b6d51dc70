"""Optimiser parameter groups: weight decay only where it belongs.

No weight decay (as timm's optimiser factory and the DCAL paper's loss weights need) for:
every parameter of the criterion (the uncertainty weights ``w_b``, paper §3.4), every parameter
with at most one dimension (LayerNorm/BatchNorm scales and shifts, biases, LayerScale gammas), and
the token parameters the backbone lists in ``no_weight_decay()`` (position embeddings, class,
distillation and register tokens).
"""

from __future__ import annotations

from typing import Optional

from torch import nn

TOKEN_PARAMETERS = ("pos_embed", "cls_token", "dist_token", "reg_token")


def _no_decay_names(model: nn.Module) -> set[str]:
    backbone = getattr(model, "backbone", None)
    listed = set(backbone.no_weight_decay()) if hasattr(backbone, "no_weight_decay") else set()
    listed.update(TOKEN_PARAMETERS)
    return {f"backbone.{name}" for name in listed}


def param_groups(model: nn.Module, criterion: Optional[nn.Module] = None, weight_decay: float = 0.05) -> list[dict]:
    """Two groups for ``torch.optim``: ``{"params", "weight_decay": weight_decay, "name": "decay"}``
    and ``{"params", "weight_decay": 0.0, "name": "no_decay"}``; frozen parameters are left out."""
    no_decay_names = _no_decay_names(model)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name in no_decay_names:
            no_decay.append(param)
        else:
            decay.append(param)
    if criterion is not None:
        no_decay.extend(p for p in criterion.parameters() if p.requires_grad)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
