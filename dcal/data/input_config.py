"""The input statistics a backbone was pretrained with: normalisation mean and std, and the resize
interpolation, from timm's pretrained config of the backbone (``timm.data.resolve_data_config``,
which ``resolve_model_data_config`` calls on a built model; known without downloading weights).

A pretrained ViT fed pixels normalised otherwise sees inputs it was not trained on: the ImageNet-21k
ViT-B/16 and the R50 hybrid expect mean = std = 0.5, DeiT ImageNet's statistics.  ``data.mean``,
``data.std`` and ``data.interpolation`` override them; :func:`with_input_config` writes the resolved
values into the config, so that ``config.yaml``, checkpoints and exported models carry them and
every command that reads images normalises as training did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import timm.data
from timm.models import get_pretrained_cfg

from dcal.config import Config
from dcal.errors import ConfigError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class InputConfig:
    mean: tuple
    std: tuple
    interpolation: str


def backbone_input_config(backbone: str) -> InputConfig:
    """Mean, std and interpolation of timm's pretrained config for ``backbone`` (a timm name, with or
    without a ``.tag``)."""
    pretrained_cfg = get_pretrained_cfg(backbone)
    resolved = timm.data.resolve_data_config(pretrained_cfg=pretrained_cfg.to_dict() if pretrained_cfg else {})
    return InputConfig(tuple(resolved["mean"]), tuple(resolved["std"]), str(resolved["interpolation"]))


def resolve_input_config(config: Config) -> InputConfig:
    """``data.mean``/``std``/``interpolation`` where set, else the backbone's."""
    d = config.data
    default = None
    if d.mean is None or d.std is None or d.interpolation is None:
        default = backbone_input_config(config.model.backbone)
    resolved = InputConfig(
        tuple(float(v) for v in d.mean) if d.mean is not None else default.mean,
        tuple(float(v) for v in d.std) if d.std is not None else default.std,
        d.interpolation if d.interpolation is not None else default.interpolation,
    )
    for key, value in (("data.mean", resolved.mean), ("data.std", resolved.std)):
        if len(value) != 3:
            raise ConfigError(f"config key {key!r} expects 3 values (R, G, B), got {list(value)!r}")
    if min(resolved.std) <= 0:
        raise ConfigError(f"config key 'data.std' expects positive values, got {list(resolved.std)!r}")
    if resolved.interpolation not in INTERPOLATIONS:
        raise ConfigError(f"config key 'data.interpolation' must be one of {', '.join(INTERPOLATIONS)}, "
                          f"got {resolved.interpolation!r}")
    return resolved


def with_input_config(config: Config) -> Config:
    """A copy of ``config`` with ``data.mean``, ``data.std`` and ``data.interpolation`` resolved."""
    resolved = resolve_input_config(config)
    config = copy.deepcopy(config)
    config.data.mean, config.data.std = list(resolved.mean), list(resolved.std)
    config.data.interpolation = resolved.interpolation
    return config
