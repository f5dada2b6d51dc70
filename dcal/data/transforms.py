"""Training and test transforms of the paper (paper §4), built from torchvision.

- FGVC train: resize to ``resize_size`` (550×550 for 448 input), random crop ``img_size``,
  horizontal flip; test: resize ``resize_size``, centre crop ``img_size``.
- Re-ID train (as TransReID): resize to ``img_size`` (256×128 persons, 256×256 vehicles),
  horizontal flip, pad ``padding`` (10) + random crop back to ``img_size``, then random erasing
  filled with per-pixel normal noise after normalisation (TransReID's timm
  ``RandomErasing(mode='pixel')``: the same area and aspect ranges, drawn from torch's generator so
  that augmentation stays seeded per image);
  test: resize to ``img_size``.
- Both: ToTensor and normalisation with the backbone's mean/std, resizing with its interpolation
  (:mod:`dcal.data.input_config`; ImageNet's statistics and bilinear when none are given).

Sizes are ``int`` (square) or ``(height, width)``.  ``resize_size`` defaults to ``img_size × 550/448``
rounded, the paper's ratio.
"""

from __future__ import annotations

from torchvision import transforms as T

from dcal.data.input_config import resolve_input_config
from dcal.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FGVC_RESIZE_RATIO = 550 / 448


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return (int(size[0]), int(size[1]))
    raise ConfigError(f"image size {size!r} is not an int or a (height, width) pair")


def default_resize_size(img_size) -> tuple[int, int]:
    """``img_size`` scaled by 550/448 (the paper's FGVC resize before cropping)."""
    height, width = _pair(img_size)
    return (round(height * FGVC_RESIZE_RATIO), round(width * FGVC_RESIZE_RATIO))


def build_transforms(task: str, train: bool, img_size, resize_size=None, flip_prob: float = 0.5,
                     padding: int = 10, erasing_prob: float = 0.5, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     interpolation: str = "bilinear"):
    """The torchvision pipeline for ``task`` (``"fgvc"`` or ``"reid"``) in training or test mode."""
    size = _pair(img_size)
    mode = T.InterpolationMode(interpolation)
    finish = [T.ToTensor(), T.Normalize(mean, std)]
    if task == "fgvc":
        resize = _pair(resize_size) if resize_size is not None else default_resize_size(size)
        if resize[0] < size[0] or resize[1] < size[1]:
            raise ConfigError(f"resize size {resize} is smaller than the crop size {size}")
        if train:
            return T.Compose([T.Resize(resize, mode), T.RandomCrop(size), T.RandomHorizontalFlip(flip_prob), *finish])
        return T.Compose([T.Resize(resize, mode), T.CenterCrop(size), *finish])
    if task == "reid":
        if train:
            return T.Compose([T.Resize(size, mode), T.RandomHorizontalFlip(flip_prob), T.Pad(padding), T.RandomCrop(size),
                              *finish, T.RandomErasing(p=erasing_prob, value="random")])
        return T.Compose([T.Resize(size, mode), *finish])
    raise ConfigError(f"task '{task}' is not one of fgvc, reid")


def config_transform(config, train: bool):
    """The training or test transform a :class:`~dcal.config.Config` describes, normalised with
    the backbone's statistics (:func:`dcal.data.input_config.resolve_input_config`)."""
    d = config.data
    statistics = resolve_input_config(config)
    resize = tuple(d.resize_size) if d.resize_size is not None else None
    return build_transforms(config.task, train, tuple(d.img_size), resize, padding=d.padding, erasing_prob=d.erasing_prob,
                            mean=statistics.mean, std=statistics.std, interpolation=statistics.interpolation)


def eval_transform(config):
    """The test-time transform of ``config`` (FGVC: resize, centre crop; Re-ID: resize)."""
    return config_transform(config, train=False)
