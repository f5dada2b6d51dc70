"""``create_model``: a timm ViT by name, its weights, and the DCAL branches around it."""

from __future__ import annotations

import os
from typing import Optional, Union

import timm

from dcal.errors import CheckpointError, ConfigError
from dcal.model.dcal_model import DCAL
from dcal.model.pretrained import load_weights


def create_model(
    backbone: str,
    num_classes: int,
    *,
    task: str = "fgvc",
    img_size: Optional[Union[int, tuple[int, int]]] = None,
    pretrained: Union[bool, str, os.PathLike] = False,
    glca_ratio: Optional[float] = None,
    pwca_blocks: Optional[int] = None,
    glca: bool = True,
    glca_readout: str = "local",
    glca_selection: str = "rollout",
    neck_feat: str = "before",
    **timm_kwargs,
) -> DCAL:
    """Build a :class:`~dcal.model.dcal_model.DCAL` model on the timm backbone ``backbone``.

    Args:
        backbone: a timm model name, e.g. ``"deit_tiny_patch16_224"``, ``"vit_base_patch16_224"``,
            ``"deit_tiny_distilled_patch16_224"``, ``"vit_base_r50_s16_224"``.
        num_classes: classes (FGVC) or training identities (Re-ID).
        task: ``"fgvc"`` (linear heads) or ``"reid"`` (BNNeck heads).
        img_size: input size, an int (square) or ``(H, W)`` such as ``(256, 128)``; ``None`` keeps
            the backbone's default.  Pretrained position embeddings are resampled to it.
        pretrained: ``False``; ``True`` for timm's hub weights of ``backbone`` (needs the network);
            or a path to a ``.safetensors``, ``.pth``/``.pt`` or big_vision ``.npz`` file.
        glca_ratio: R, the share of patches GLCA queries; ``None`` is the paper's
            (:data:`~dcal.model.dcal_model.GLCA_RATIO`: 0.1 for FGVC, 0.3 for Re-ID).
        pwca_blocks: T, the number of leading blocks with pair-wise cross-attention; ``None`` is
            the paper's T = 12 (:data:`~dcal.model.dcal_model.PWCA_BLOCKS`).  T is capped at the
            backbone's depth, so ``None`` means every block of any backbone, e.g. all 6 with
            ``depth=6``; 0 turns PWCA off.  Blocks after the first T run as plain self-attention
            in the PWCA stream.
        glca: ``False`` turns GLCA off (the baseline is ``glca=False, pwca_blocks=0``).
        glca_readout: ``"local"`` (the method): GLCA's queries are the selected patches and its
            feature is their mean after its final norm; ``"cls"``: the prefix tokens join the
            queries and the class token is read out, which makes GLCA ignore the selection (kept
            for comparison, see :mod:`dcal.model.glca`).
        glca_selection: ``"rollout"`` (the method), ``"last"`` (the last block's class-token
            attention alone) or ``"random"`` (:mod:`dcal.model.selection`).
        neck_feat: Re-ID inference feature before (``"before"``, as TransReID tests) or after
            (``"after"``) the BNNecks.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``embed_dim=96, depth=6``,
            ``drop_path_rate=0.1``).
    """
    kwargs = dict(timm_kwargs)
    if not timm.is_model(backbone):
        raise ConfigError(f"unknown timm backbone {backbone!r}")
    if img_size is not None:
        kwargs["img_size"] = tuple(img_size) if isinstance(img_size, (list, tuple)) else int(img_size)
        _check_img_size(backbone, kwargs)
    from_hub = pretrained is True
    try:
        vit = timm.create_model(backbone, pretrained=from_hub, num_classes=0, **kwargs)
    except RuntimeError as error:
        if from_hub:
            raise CheckpointError(f"cannot load timm's pretrained weights for {backbone!r}: {error}") from error
        raise ConfigError(f"timm cannot build backbone {backbone!r} with {_options(kwargs)}: {_line(error)}") from error
    except (TypeError, ValueError, AssertionError, AttributeError) as error:  # options the architecture rejects
        raise ConfigError(f"timm cannot build backbone {backbone!r} with {_options(kwargs)}: {_line(error)}") from error
    if pretrained not in (False, True, None):
        load_weights(vit, pretrained)
    return DCAL(
        vit, num_classes, task=task, glca_ratio=glca_ratio, pwca_blocks=pwca_blocks, glca=glca,
        glca_readout=glca_readout, glca_selection=glca_selection, neck_feat=neck_feat, name=backbone,
    )


def _check_img_size(backbone: str, kwargs: dict) -> None:
    """A :class:`ConfigError` unless ``kwargs["img_size"]`` is a whole number of patches of the
    backbone (timm asserts it deep inside; the patch size is read from a model built on the meta
    device, which costs no memory)."""
    from torch import device

    try:
        with device("meta"):
            probe = timm.create_model(backbone, num_classes=0, **{k: v for k, v in kwargs.items() if k != "img_size"})
        patch = tuple(probe.patch_embed.patch_size)
    except Exception:  # not a patch-embedding ViT, or options timm rejects: create_model reports it
        return
    size = kwargs["img_size"]
    height, width = (size, size) if isinstance(size, int) else size
    if height % patch[0] or width % patch[1]:
        raise ConfigError(f"img_size {size!r} is not a multiple of backbone {backbone!r}'s patch size "
                          f"{patch[0]}x{patch[1]}; use e.g. {(height // patch[0] or 1) * patch[0]} or "
                          f"{(height // patch[0] + 1) * patch[0]}")


def _options(kwargs: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in sorted(kwargs.items())) or "its defaults"


def _line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
