"""The paper's optimisers and the cosine schedule with warmup (paper §4), from timm's factories.

- FGVC: AdamW, weight decay 0.05, learning rate 5e-4 x batch / 512, cosine decay.
- Re-ID: SGD with momentum 0.9, weight decay 1e-4, learning rate 0.008, cosine decay.

The loss's uncertainty weights ``w_b`` (§3.4) are a parameter group of their own, without weight
decay, whose learning rate is ``loss.weight_lr`` (``None``: the network's): timm's scheduler
scales it by the group's ``lr_scale``, so it follows the same warmup and cosine.  The paper does
not say how ``w_b`` are optimised; under SGD a weight that reaches its equilibrium ``log L_b``
multiplies the branch's gradient by ``½·exp(−w_b) ≈ ½/L_b``, which is why the rate is separate.

The schedule steps once per optimiser step (``t_in_epochs=False``), so warmup and decay are
smooth within an epoch and a run resumed mid-epoch continues on the same curve.  As in TransReID's
and DeiT's schedules (timm's ``warmup_prefix=False``), the warmup is the first part of
``train.epochs`` and the cosine, over the whole run, reaches ``train.min_lr`` at its last step.
"""

from __future__ import annotations

from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn

from dcal.config import Config


def scaled_lr(config: Config) -> float:
    """``optim.lr`` scaled linearly by ``data.batch_size / optim.lr_reference_batch`` (when that is set)."""
    o = config.optim
    if o.lr_reference_batch is None:
        return o.lr
    return o.lr * config.data.batch_size / o.lr_reference_batch


def param_groups(model: nn.Module, criterion: nn.Module, weight_decay: float, loss_weight_lr_scale: float = 1.0) -> list[dict]:
    """The optimiser's parameter groups: timm's weight-decay groups of ``model`` (no decay on the
    parameters of at most one dimension and the names ``model.no_weight_decay()`` lists), then the
    trainable loss weights of ``criterion`` in a group of their own, without weight decay, whose
    learning rate is the network's times ``loss_weight_lr_scale``."""
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=model.no_weight_decay())
    weights = [w for w in criterion.parameters() if w.requires_grad]
    if weights:
        groups.append({"params": weights, "weight_decay": 0.0, "lr_scale": loss_weight_lr_scale})
    return groups


def build_optimizer(model: nn.Module, criterion: nn.Module, config: Config):
    """timm's optimizer ``optim.name`` over :func:`param_groups` of ``model`` and ``criterion``."""
    o, lr = config.optim, scaled_lr(config)
    weight_lr = config.loss.weight_lr
    scale = 1.0 if weight_lr is None else (weight_lr / lr if lr > 0 else 0.0)
    groups = param_groups(model, criterion, o.weight_decay, scale)
    return create_optimizer_v2(groups, opt=o.name, lr=lr, weight_decay=o.weight_decay, momentum=o.momentum)


def build_scheduler(optimizer, config: Config, steps_per_epoch: int) -> CosineLRScheduler:
    """Cosine decay to ``train.min_lr`` at the run's last optimiser step, with a linear warmup from
    ``train.warmup_lr`` over its first ``train.warmup_epochs``."""
    t = config.train
    return CosineLRScheduler(
        optimizer,
        t_initial=max(1, t.epochs * steps_per_epoch),
        lr_min=t.min_lr,
        warmup_t=round(t.warmup_epochs * steps_per_epoch),
        warmup_lr_init=t.warmup_lr,
        t_in_epochs=False,
    )
