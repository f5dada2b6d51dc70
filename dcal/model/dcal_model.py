"""The DCAL model: SA, GLCA and PWCA branches around one timm ViT (Zhu et al., CVPR 2022, §3).

One pass over the backbone's blocks (:mod:`dcal.model.streams`) carries up to two token streams:

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
"""

from __future__ import annotations

from typing import Optional

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from dcal.errors import ConfigError
from dcal.model.backbone import check_supported, embed, grid_size, pre_logits
from dcal.model.glca import GlobalLocalCrossAttention
from dcal.model.heads import BNNeckHead, LinearHead
from dcal.model.inference import NECK_FEATS, fgvc_scores, reid_features
from dcal.model.rollout import class_token_rollout
from dcal.model.selection import SELECTIONS, check_selected, needs_attention, select_queries
from dcal.model.streams import run_streams

TASKS = ("fgvc", "reid")
"""The values of ``task`` (config ``task``): linear heads or BNNecks, and the loss that goes with them."""
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
        rollout = self.glca is not None and needs_attention(self.glca_selection)
        return self.inference(self.forward_head(self.forward_features(x, rollout=rollout)))

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
        and the rollout (inference with random selection, or without GLCA)."""
        vit = self.backbone
        batch = x.shape[0]
        if pair_index is not None:
            self._check_pairs(pair_index, batch)
            pair_index = pair_index.to(x.device)
        recompute = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        streams = run_streams(vit, embed(vit, x), pair_index, pwca_blocks=self.pwca_blocks, rollout=rollout,
                              recompute=recompute)
        out = {"sa": pre_logits(vit, streams.sa)}
        if pair_index is not None:
            out["pwca"] = pre_logits(vit, streams.pwca)
        prefix = self.num_prefix_tokens
        last_attention = None
        if rollout:
            num_heads = vit.blocks[0].attn.num_heads
            out["rollout"] = class_token_rollout(streams.maps[-1][:, 0], streams.maps[:-1], num_heads)[:, prefix:]
            last_attention = streams.maps[-1][:, 0, prefix:]
        num_patches = streams.last_input.shape[1] - prefix
        if selected is not None:
            if self.glca is None:
                raise ConfigError("selected was given but GLCA is off (glca=False)")
            selected = check_selected(selected, batch, num_patches).to(x.device)
        else:
            selected = select_queries(self.glca_selection, self.glca_ratio, num_patches, rollout=out.get("rollout"),
                                      last_attention=last_attention, batch=batch, device=x.device,
                                      training=self.training)
        if selected is not None:
            out["selected"] = selected
        if self.glca is not None:
            if selected is None:
                raise ConfigError("GLCA needs the attention maps (rollout=True) to select its queries, or selected=")
            if recompute:
                out["glca"] = checkpoint(self.glca, streams.last_input, selected, use_reentrant=False)
            else:
                out["glca"] = self.glca(streams.last_input, selected)
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
