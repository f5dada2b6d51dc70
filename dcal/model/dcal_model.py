"""The DCAL model: SA, GLCA and PWCA branches around one timm ViT (Zhu et al., CVPR 2022, §3).

One pass over the backbone's blocks carries up to two token streams:

* **SA** — the backbone itself (paper §3.1).  Each block also yields its head-averaged attention
  map for the rollout (§3.2) and its keys/values for PWCA.
* **PWCA** (training only, §3.3) — started from the same embedded tokens; in the first
  ``pwca_blocks`` blocks it attends over its own keys/values and those of its distractor's SA
  stream (:mod:`dcal.model.pwca`); in the remaining blocks, if any, it is ordinary self-attention
  with the same weights.  It shares every weight with SA (blocks, final norm, head).
* **GLCA** (§3.2) — after the blocks, the class-token rollout picks the top R patches and one
  GLCA block with its own weights reads the last SA block's input (:mod:`dcal.model.glca`).

When the head reads only the prefix tokens (class-token pooling; distilled DeiT), both streams
compute their last block for those tokens only: the patch rows of that block reach no output, and
the rollout needs only the class token's row of its attention.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from dcal.errors import ConfigError
from dcal.model.attention import attend, block_heads, block_output, self_attention_with_map
from dcal.model.backbone import check_supported, embed, grid_size, head_reads_prefix_only, pre_logits
from dcal.model.glca import GlobalLocalCrossAttention
from dcal.model.heads import BNNeckHead, LinearHead
from dcal.model.pwca import pair_wise_attention
from dcal.model.rollout import class_token_rollout, select_top

TASKS = ("fgvc", "reid")


class DCAL(nn.Module):
    """Dual Cross-Attention Learning around ``backbone``, a timm ``VisionTransformer``.

    Built by :func:`dcal.model.factory.create_model`; the backbone's own classifier is removed
    (``num_classes=0``) and replaced by one head per branch: SA and PWCA share ``sa_head``, GLCA
    has ``glca_head``.  FGVC heads are linear, Re-ID heads are BNNecks.

    ``forward`` in eval mode is inference (no PWCA): FGVC returns softmax(SA logits) +
    softmax(GLCA logits) (only softmax(SA logits) without GLCA); Re-ID returns the L2-normalised
    concatenation of the post-BN SA and GLCA features, (B, 2D) (B, D without GLCA).  In train mode
    ``forward(x, pair_index)`` returns :meth:`forward_branches`.
    """

    def __init__(
        self,
        backbone: VisionTransformer,
        num_classes: int,
        *,
        task: str = "fgvc",
        glca_ratio: Optional[float] = None,
        pwca_blocks: Optional[int] = None,
        glca: bool = True,
        name: str = "backbone",
    ):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}; got {task!r}")
        check_supported(backbone, name)
        depth = len(backbone.blocks)
        if pwca_blocks is None:
            pwca_blocks = depth
        if pwca_blocks < 0:
            raise ConfigError(f"pwca_blocks must be 0 (PWCA off) or a positive number of blocks; got {pwca_blocks}")
        pwca_blocks = min(pwca_blocks, depth)  # T = 12 in the paper means every block of a 12-block ViT
        if glca_ratio is None:
            glca_ratio = 0.1 if task == "fgvc" else 0.3
        if not 0.0 < glca_ratio <= 1.0:
            raise ConfigError(f"glca_ratio must be in (0, 1]; got {glca_ratio}")
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1; got {num_classes}")

        self.backbone = backbone
        self.task = task
        self.num_classes = num_classes
        self.glca_ratio = float(glca_ratio)
        self.pwca_blocks = int(pwca_blocks)
        self.num_prefix_tokens = backbone.num_prefix_tokens
        self.embed_dim = backbone.num_features
        head = LinearHead if task == "fgvc" else BNNeckHead
        self.sa_head = head(self.embed_dim, num_classes)
        self.glca = GlobalLocalCrossAttention(backbone) if glca else None
        self.glca_head = head(self.embed_dim, num_classes) if glca else None

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (rows, columns) at the configured input size; ``rollout`` reshapes to it."""
        return grid_size(self.backbone)

    def forward_branches(self, x: torch.Tensor, pair_index: Optional[torch.Tensor] = None) -> dict:
        """All branches of one batch.

        Returns a dict with ``"sa"``, ``"glca"`` (omitted when GLCA is off) and ``"pwca"`` (only
        when ``pair_index`` is given), each ``{"feat": (B, D) before the head, "logits": (B, C)}``
        — for Re-ID ``"feat"`` is the pre-BN feature and there is also ``"bn_feat"``; plus
        ``"rollout"``, the class token's accumulated attention over the N patch tokens (B, N),
        and ``"selected"``, the (B, k) patch indices GLCA uses (k = max(1, round(R·N))),
        computed even when GLCA is off.

        ``pair_index`` (LongTensor (B,)): entry i is the batch index of image i's PWCA
        distractor (see :func:`dcal.model.pairing.derangement`).  With PWCA off
        (``pwca_blocks=0``) passing it raises :class:`~dcal.errors.ConfigError`.
        """
        return self._branches(x, pair_index, rollout=True)

    def forward(self, x: torch.Tensor, pair_index: Optional[torch.Tensor] = None):
        if self.training:
            return self.forward_branches(x, pair_index)
        if pair_index is not None:
            raise ConfigError("pair_index is for training; in eval mode PWCA is removed (paper §3.3)")
        out = self._branches(x, None, rollout=self.glca is not None)
        if self.task == "fgvc":
            scores = out["sa"]["logits"].softmax(dim=-1)
            if "glca" in out:
                scores = scores + out["glca"]["logits"].softmax(dim=-1)
            return scores
        feats = [out["sa"]["bn_feat"]] + ([out["glca"]["bn_feat"]] if "glca" in out else [])
        return F.normalize(torch.cat(feats, dim=1), dim=1)

    def _check_pairs(self, pair_index: torch.Tensor, batch: int) -> None:
        if self.pwca_blocks == 0:
            raise ConfigError("pair_index was given but PWCA is off (pwca_blocks=0)")
        if pair_index.shape != (batch,) or pair_index.dtype != torch.long:
            raise ConfigError(
                f"pair_index must be a LongTensor of shape ({batch},); got {pair_index.dtype} {tuple(pair_index.shape)}"
            )

    def _branches(self, x: torch.Tensor, pair_index: Optional[torch.Tensor], rollout: bool) -> dict:
        vit = self.backbone
        blocks = vit.blocks
        last = len(blocks) - 1
        tokens = embed(vit, x)
        if pair_index is not None:
            self._check_pairs(pair_index, x.shape[0])
            pair_index = pair_index.to(x.device)
        pwca_tokens = tokens
        maps = []  # rows of H·S_1 … H·S_L for the rollout
        for index, block in enumerate(blocks):
            queries = None
            if index == last:
                glca_input = tokens
                if head_reads_prefix_only(vit):  # only the prefix rows of the last block are read
                    queries = self.num_prefix_tokens
            heads = block_heads(block, tokens, queries)
            if rollout:
                attended, head_sum = self_attention_with_map(block, heads)
                maps.append(head_sum)
            else:
                attended = attend(block, heads.q, heads.k, heads.v)
            if pair_index is not None:
                own = block_heads(block, pwca_tokens, queries)
                if index < self.pwca_blocks:
                    pwca_attended = pair_wise_attention(block, own, heads.k, heads.v, pair_index)
                else:
                    pwca_attended = attend(block, own.q, own.k, own.v)
                pwca_tokens = block_output(block, pwca_tokens[:, :queries], own.h, pwca_attended)
            tokens = block_output(block, tokens[:, :queries], heads.h, attended)

        out = {"sa": self.sa_head(pre_logits(vit, tokens))}
        if pair_index is not None:
            out["pwca"] = self._pwca_head(pre_logits(vit, pwca_tokens))
        if rollout:
            class_row = class_token_rollout(maps[-1][:, 0], maps[:-1], blocks[0].attn.num_heads)
            patch_rollout = class_row[:, self.num_prefix_tokens :]
            selected = select_top(patch_rollout, self.glca_ratio)
            out["rollout"], out["selected"] = patch_rollout, selected
            if self.glca is not None:
                out["glca"] = self.glca_head(self.glca(vit, glca_input, selected))
        return out

    def _pwca_head(self, feat: torch.Tensor) -> dict:
        """SA's head applied to the PWCA feature.  A Re-ID BNNeck normalises it with the batch's
        own statistics in training but does not fold them into the running statistics, which
        serve SA features at inference."""
        if isinstance(self.sa_head, BNNeckHead):
            return self.sa_head(feat, update_stats=False)
        return self.sa_head(feat)
