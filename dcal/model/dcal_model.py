"""The DCAL model: SA, GLCA and PWCA branches around one timm ViT (Zhu et al., CVPR 2022, §3).

One pass over the backbone's blocks carries up to two token streams:

* **SA** — the backbone itself (paper §3.1).  Each block also yields its head-summed attention
  map for the rollout (§3.2) and its keys/values for PWCA.
* **PWCA** (training only, §3.3) — started from the same embedded tokens; in the first
  ``pwca_blocks`` blocks it attends over its own keys/values and those of its distractor's SA
  stream (:func:`dcal.model.pwca.pwca_block`).  It shares every weight with SA (blocks, final
  norm, head).
* **GLCA** (§3.2) — after the blocks, the selected patches (by default the top R by the class
  token's rollout) are the queries of one GLCA block with its own weights, which reads the last
  SA block's input (:mod:`dcal.model.glca`).

As in timm, :meth:`DCAL.forward_features` gives each branch's pre-head feature and
:meth:`DCAL.forward_head` applies the heads; :meth:`DCAL.forward_branches` is both.

When the head reads only the prefix tokens (class-token pooling; distilled DeiT), both streams
compute their last block for those tokens only: the patch rows of that block reach no output, and
the rollout needs only the class token's row of its attention.
"""

from __future__ import annotations

from typing import Optional

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from dcal.errors import ConfigError
from dcal.model.attention import attend, block_heads, block_output, self_attention_with_map
from dcal.model.backbone import check_supported, embed, grid_size, head_reads_prefix_only, pre_logits
from dcal.model.glca import GlobalLocalCrossAttention
from dcal.model.heads import BNNeckHead, LinearHead
from dcal.model.inference import NECK_FEATS, fgvc_scores, reid_features
from dcal.model.pwca import pwca_block
from dcal.model.rollout import class_token_rollout
from dcal.model.selection import SELECTIONS, check_selected, num_selected, select_random, select_top

TASKS = ("fgvc", "reid")
GLCA_RATIO = {"fgvc": 0.1, "reid": 0.3}
"""R, the share of patch tokens GLCA queries, per task (paper §4)."""
PWCA_BLOCKS = 12
"""T, the leading blocks with pair-wise cross-attention (paper §4: T = 12, every block of ViT-B)."""


class DCAL(nn.Module):
    """Dual Cross-Attention Learning around ``backbone``, a timm ``VisionTransformer``.

    Built by :func:`dcal.model.factory.create_model`, which documents the options and holds their
    defaults (``None`` for R and T is the paper's: :data:`GLCA_RATIO`, :data:`PWCA_BLOCKS`).  The
    backbone's own classifier is removed
    (``num_classes=0``) and replaced by one head per branch: SA and PWCA share ``sa_head``, GLCA
    has ``glca_head``.  FGVC heads are linear, Re-ID heads are BNNecks.

    ``forward`` in eval mode is inference (no PWCA, :mod:`dcal.model.inference`): FGVC returns
    softmax(SA logits) + softmax(GLCA logits); Re-ID the L2-normalised concatenation of the SA and
    GLCA features, before the BNNecks (``neck_feat="before"``) or after them.  In train mode
    ``forward(x, pair_index)`` returns :meth:`forward_branches`.
    """

    def __init__(
        self,
        backbone: VisionTransformer,
        num_classes: int,
        *,
        task: str,
        glca_ratio: Optional[float],
        pwca_blocks: Optional[int],
        glca: bool,
        glca_readout: str,
        glca_selection: str,
        neck_feat: str,
        name: str = "backbone",
    ):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}; got {task!r}")
        check_supported(backbone, name)
        if pwca_blocks is None:
            pwca_blocks = PWCA_BLOCKS
        if pwca_blocks < 0:
            raise ConfigError(f"pwca_blocks must be 0 (PWCA off) or a positive number of blocks; got {pwca_blocks}")
        if glca_ratio is None:
            glca_ratio = GLCA_RATIO[task]
        if not 0.0 < glca_ratio <= 1.0:
            raise ConfigError(f"glca_ratio must be in (0, 1]; got {glca_ratio}")
        if glca_selection not in SELECTIONS:
            raise ConfigError(f"glca_selection must be one of {', '.join(SELECTIONS)}; got {glca_selection!r}")
        if neck_feat not in NECK_FEATS:
            raise ConfigError(f"neck_feat must be one of {', '.join(NECK_FEATS)}; got {neck_feat!r}")
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1; got {num_classes}")

        self.backbone = backbone
        self.task = task
        self.num_classes = num_classes
        self.glca_ratio = float(glca_ratio)
        self.pwca_blocks = min(int(pwca_blocks), len(backbone.blocks))  # T = 12 means every block of ViT-B
        self.glca_selection = glca_selection
        self.neck_feat = neck_feat
        self.num_prefix_tokens = backbone.num_prefix_tokens
        self.embed_dim = backbone.num_features
        self.grad_checkpointing = False
        head = LinearHead if task == "fgvc" else BNNeckHead
        self.sa_head = head(self.embed_dim, num_classes)
        self.glca = GlobalLocalCrossAttention(backbone, glca_readout) if glca else None
        self.glca_head = head(self.embed_dim, num_classes) if glca else None

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (rows, columns) at the configured input size; ``rollout`` reshapes to it."""
        return grid_size(self.backbone)

    @property
    def glca_readout(self) -> Optional[str]:
        return self.glca.readout if self.glca is not None else None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block of the SA and PWCA streams, and the GLCA block, in the backward
        pass instead of keeping their activations (timm's name for the switch)."""
        self.grad_checkpointing = bool(enable)

    def no_weight_decay(self) -> set[str]:
        """The backbone's token parameters (class, distillation, register tokens, position
        embeddings), named as in this module: timm's optimiser factory exempts them from weight decay."""
        return {f"backbone.{name}" for name in self.backbone.no_weight_decay()}

    def forward_branches(
        self, x: torch.Tensor, pair_index: Optional[torch.Tensor] = None, selected: Optional[torch.Tensor] = None
    ) -> dict:
        """All branches of one batch: :meth:`forward_head` of :meth:`forward_features`.

        Returns a dict with ``"sa"``, ``"glca"`` (omitted when GLCA is off) and ``"pwca"`` (only
        when ``pair_index`` is given), each ``{"feat": (B, D) before the head, "logits": (B, C)}``
        — for Re-ID ``"feat"`` is the pre-BN feature and there is also ``"bn_feat"``; plus
        ``"rollout"``, the class token's accumulated attention over the N patch tokens (B, N),
        and ``"selected"``, the (B, k) patch indices GLCA queries (k = max(1, round(R·N)) unless
        given), computed even when GLCA is off.

        ``pair_index`` (LongTensor (B,)): entry i is the batch index of image i's PWCA
        distractor (see :func:`dcal.model.pairing.derangement`).  With PWCA off
        (``pwca_blocks=0``) passing it raises :class:`~dcal.errors.ConfigError`.
        ``selected`` (LongTensor (B, k) of patch indices): GLCA queries these patches instead of
        the ones ``glca_selection`` picks.
        """
        return self.forward_head(self.forward_features(x, pair_index, selected))

    def forward(self, x: torch.Tensor, pair_index: Optional[torch.Tensor] = None):
        if self.training:
            return self.forward_branches(x, pair_index)
        if pair_index is not None:
            raise ConfigError("pair_index is for training; in eval mode PWCA is removed (paper §3.3)")
        needs_maps = self.glca is not None and self.glca_selection != "random"
        return self.inference(self.forward_head(self.forward_features(x, rollout=needs_maps)))

    def inference(self, branches: dict) -> torch.Tensor:
        """The inference output of ``forward_branches`` output: FGVC class scores or Re-ID features."""
        if self.task == "fgvc":
            return fgvc_scores(branches)
        return reid_features(branches, self.neck_feat)

    def forward_head(self, features: dict) -> dict:
        """Each branch's head on its feature from :meth:`forward_features`."""
        out = {key: value for key, value in features.items() if key not in ("sa", "glca", "pwca")}
        out["sa"] = self.sa_head(features["sa"])
        if "pwca" in features:
            out["pwca"] = self._pwca_head(features["pwca"])
        if "glca" in features:
            out["glca"] = self.glca_head(features["glca"])
        return out

    def forward_features(
        self,
        x: torch.Tensor,
        pair_index: Optional[torch.Tensor] = None,
        selected: Optional[torch.Tensor] = None,
        rollout: bool = True,
    ) -> dict:
        """Pre-head features ``"sa"``, ``"glca"``, ``"pwca"`` (each (B, D)), with ``"rollout"`` and
        ``"selected"`` (see :meth:`forward_branches`).  ``rollout=False`` skips the attention maps
        (inference with random selection, or without GLCA)."""
        vit = self.backbone
        blocks = vit.blocks
        last = len(blocks) - 1
        batch = x.shape[0]
        tokens = embed(vit, x)
        if pair_index is not None:
            self._check_pairs(pair_index, batch)
            pair_index = pair_index.to(x.device)
        pwca_tokens = tokens if pair_index is not None else None
        recompute = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        maps = []  # rows of H·S_1 … H·S_L for the rollout
        for index, block in enumerate(blocks):
            queries = None
            if index == last:
                glca_input = tokens
                if head_reads_prefix_only(vit):  # only the prefix rows of the last block are read
                    queries = self.num_prefix_tokens
            step = (block, index < self.pwca_blocks, queries, rollout, pair_index)
            if recompute:
                tokens, pwca_tokens, head_sum = checkpoint(_block_step, *step, tokens, pwca_tokens, use_reentrant=False)
            else:
                tokens, pwca_tokens, head_sum = _block_step(*step, tokens, pwca_tokens)
            if rollout:
                maps.append(head_sum)

        out = {"sa": pre_logits(vit, tokens)}
        if pair_index is not None:
            out["pwca"] = pre_logits(vit, pwca_tokens)
        num_patches = glca_input.shape[1] - self.num_prefix_tokens
        k = num_selected(num_patches, self.glca_ratio)  # R of the N patches (paper §4)
        if rollout:
            num_heads = blocks[0].attn.num_heads
            class_row = class_token_rollout(maps[-1][:, 0], maps[:-1], num_heads)
            out["rollout"] = class_row[:, self.num_prefix_tokens :]
        if selected is not None:
            if self.glca is None:
                raise ConfigError("selected was given but GLCA is off (glca=False)")
            selected = check_selected(selected, batch, num_patches).to(x.device)
        elif self.glca_selection == "random":
            selected = select_random(batch, num_patches, k, x.device, self.training)
        elif rollout:
            scores = out["rollout"] if self.glca_selection == "rollout" else maps[-1][:, 0, self.num_prefix_tokens :]
            selected = select_top(scores, k)
        if selected is not None:
            out["selected"] = selected
        if self.glca is not None:
            if selected is None:
                raise ConfigError("GLCA needs the attention maps (rollout=True) to select its queries, or selected=")
            if recompute:
                out["glca"] = checkpoint(self.glca, vit, glca_input, selected, use_reentrant=False)
            else:
                out["glca"] = self.glca(vit, glca_input, selected)
        return out

    def _check_pairs(self, pair_index: torch.Tensor, batch: int) -> None:
        if self.pwca_blocks == 0:
            raise ConfigError("pair_index was given but PWCA is off (pwca_blocks=0)")
        if pair_index.shape != (batch,) or pair_index.dtype != torch.long:
            raise ConfigError(
                f"pair_index must be a LongTensor of shape ({batch},); got {pair_index.dtype} {tuple(pair_index.shape)}"
            )

    def _pwca_head(self, feat: torch.Tensor) -> dict:
        """SA's head applied to the PWCA feature.  A Re-ID BNNeck normalises it with the batch's
        own statistics in training but does not fold them into the running statistics, which
        serve SA features at inference."""
        if isinstance(self.sa_head, BNNeckHead):
            return self.sa_head(feat, update_stats=False)
        return self.sa_head(feat)


def _block_step(block, cross: bool, queries: Optional[int], with_map: bool, pair_index, tokens, pwca_tokens):
    """One block of the SA stream (with its head-summed attention map when ``with_map``) and, when
    ``pair_index`` is given, of the PWCA stream, which reads the SA stream's keys and values."""
    heads = block_heads(block, tokens, queries)
    head_sum = None
    if with_map:
        attended, head_sum = self_attention_with_map(block, heads)
    else:
        attended = attend(block, heads.q, heads.k, heads.v)
    if pair_index is not None:
        pwca_tokens = pwca_block(block, pwca_tokens, heads, pair_index, cross, queries)
    return block_output(block, tokens[:, :queries], heads.h, attended), pwca_tokens, head_sum
