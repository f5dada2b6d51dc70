"""The timm ``VisionTransformer`` DCAL drives, and the pieces of its forward pass it reuses.

dcal never re-implements the backbone: tokens are made by the model's own ``patch_embed``,
``_pos_embed``, ``patch_drop`` and ``norm_pre`` (as in ``forward_features``), the blocks are
driven through their own submodules (:mod:`dcal.model.attention`), and the SA feature is the
model's own ``forward_head(norm(x), pre_logits=True)``.  What the DCAL branches need beyond that
is checked here, once, with a clear error for variants the method does not fit.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from timm.layers import Attention
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import Block, VisionTransformer, global_pool_nlc
from torch import nn

from dcal.errors import UnsupportedBackboneError


def check_supported(vit: nn.Module, name: str) -> None:
    """Raise :class:`UnsupportedBackboneError` unless ``vit`` is a plain timm ViT DCAL can drive.

    Needs: a ``VisionTransformer`` (plain, distilled or hybrid-embedded) with a class token (the
    rollout starts from it), pre-norm ``Block``\\ s with the standard ``Attention`` (q/k norms,
    scale norm and gate are supported), and token or average pooling (not attention pooling).
    """
    if not isinstance(vit, VisionTransformer):
        raise UnsupportedBackboneError(
            f"backbone {name!r} is a {type(vit).__name__}; DCAL needs a timm VisionTransformer "
            "(ViT, DeiT, distilled DeiT or a hybrid such as vit_base_r50_s16_224)"
        )
    if vit.cls_token is None:
        raise UnsupportedBackboneError(
            f"backbone {name!r} has no class token; the attention rollout (DCAL §3.2) starts from it"
        )
    if getattr(vit, "attn_pool", None) is not None or vit.global_pool not in ("token", "avg", "avgmax", "max"):
        raise UnsupportedBackboneError(
            f"backbone {name!r} uses global_pool={vit.global_pool!r}; DCAL supports 'token', 'avg', "
            "'avgmax' and 'max' (not attention pooling)"
        )
    for index, block in enumerate(vit.blocks):
        attn = getattr(block, "attn", None)  # parallel blocks (ParallelThingsBlock, ...) have none
        if type(block) is not Block or type(attn) is not Attention:
            attention = f" with {type(attn).__name__}" if attn is not None else ""
            raise UnsupportedBackboneError(
                f"backbone {name!r}: block {index} is a {type(block).__name__}{attention}; DCAL drives "
                "timm's pre-norm Block with its standard Attention only (no RoPE, parallel, res-post or "
                "differential variants)"
            )


def embed(vit: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Tokens entering block 1, (B, P+N, D): ``forward_features`` up to the blocks."""
    x = vit.patch_embed(images)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    return vit.norm_pre(x)


def pre_logits(vit: VisionTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The SA feature: timm's final norm and ``forward_head(pre_logits=True)``."""
    return vit.forward_head(vit.norm(tokens), pre_logits=True)


def head_reads_prefix_only(vit: VisionTransformer) -> bool:
    """Whether ``forward_head`` reads only prefix tokens: the class token (``global_pool='token'``)
    or, for distilled DeiT, the class and distillation tokens.  Then the last block's patch-token
    rows reach no output, and DCAL computes that block for the prefix tokens only (its keys and
    values still come from all tokens), which gives the same feature for about 10/12 of a block
    less work."""
    return isinstance(vit, VisionTransformerDistilled) or vit.global_pool == "token"


def pooling(vit: VisionTransformer) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pooling step of ``vit.forward_head`` (before ``fc_norm``) as a function of the tokens of
    another stream; it holds the backbone's pooling settings, not the backbone.

    Distilled DeiT averages its class and distillation tokens (timm's pre-logits); every other
    ViT pools as ``vit.pool`` does with its ``global_pool`` setting (attention pooling is refused
    by :func:`check_supported`).
    """
    if isinstance(vit, VisionTransformerDistilled):
        return _class_and_distillation_mean
    return functools.partial(global_pool_nlc, pool_type=vit.global_pool, num_prefix_tokens=vit.num_prefix_tokens,
                             reduce_include_prefix=getattr(vit, "pool_include_prefix", False))


def _class_and_distillation_mean(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens[:, 0] + tokens[:, 1]) / 2


def grid_size(vit: VisionTransformer) -> tuple[int, int]:
    """Patch grid (rows, columns) of the configured input size."""
    rows, cols = vit.patch_embed.grid_size
    return int(rows), int(cols)
