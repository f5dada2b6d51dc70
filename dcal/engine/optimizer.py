"""The paper's optimisers and the cosine schedule with warmup (paper §4), from timm's factories.

- FGVC: AdamW, weight decay 0.05, learning rate 5e-4 x batch / 512, cosine decay.
- Re-ID: SGD with momentum 0.9, weight decay 1e-4, learning rate 0.008, cosine decay.

The schedule steps once per optimiser step (``t_in_epochs=False``), so warmup and decay are
smooth within an epoch and a run resumed mid-epoch continues on the same curve.
"""

from __future__ import annotations

from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn

from dcal.config import Config


def scaled_lr(config: Config) -> float:
    """``optim.lr`` scaled linearly by ``data.batch_size / optim.lr_reference_batch`` (when that is set)."""
    o = config.optim
    if o.lr_reference_batch is None:
        return o.lr
    return o.lr * config.data.batch_size / o.lr_reference_batch


def build_optimizer(module: nn.Module, config: Config):
    """timm's optimizer ``optim.name`` over ``module``'s parameters, with ``optim.weight_decay`` on all
    but the parameters of at most one dimension and the names ``module.no_weight_decay()`` lists."""
    o = config.optim
    return create_optimizer_v2(module, opt=o.name, lr=scaled_lr(config), weight_decay=o.weight_decay, momentum=o.momentum)


def build_scheduler(optimizer, config: Config, steps_per_epoch: int) -> CosineLRScheduler:
    """Cosine decay to ``train.min_lr`` over all optimiser steps, after a linear warmup from ``train.warmup_lr``."""
    t = config.train
    return CosineLRScheduler(
        optimizer,
        t_initial=max(1, t.epochs * steps_per_epoch),
        lr_min=t.min_lr,
        warmup_t=round(t.warmup_epochs * steps_per_epoch),
        warmup_lr_init=t.warmup_lr,
        warmup_prefix=True,
        t_in_epochs=False,
    )
