"""Global-local cross-attention (GLCA), paper §3.2, Eq. 4, with M = 1 block.

Our reading of the paper, kept throughout dcal:

* GLCA has its own weights — a deep copy of the last SA block, of the final norm and of
  ``fc_norm`` — initialised from the backbone and then trained on their own.
* It sits beside the last SA block L and reads that block's input ``x_{L-1}`` (B, P+N, D).
* The local queries are the P prefix tokens (class token, and the distillation token of distilled
  DeiT) plus the k patch tokens with the largest class-token rollout ``Ŝ_L`` (k = max(1, round(R·N))).
* Keys and values are all P+N tokens of ``x_{L-1}``.
* It is a full pre-norm transformer block on the query tokens:
  ``y = x_sel + Attn(Q = LN(x_sel), K = V = LN(x))``, ``z = y + MLP(LN(y))``.
* Its output is read like the backbone's (class token, or the backbone's pooling over the GLCA
  tokens for ``global_pool='avg'``; the mean of class and distillation token for distilled DeiT)
  after its own final LayerNorm, and goes to its own head.
"""

from __future__ import annotations

import copy

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from dcal.model.attention import attend, block_output, key_value_heads, query_heads
from dcal.model.backbone import pool


class GlobalLocalCrossAttention(nn.Module):
    """One GLCA block with its own final norm; ``forward`` returns the pre-head feature (B, D)."""

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        self.block = copy.deepcopy(vit.blocks[-1])
        self.norm = copy.deepcopy(vit.norm)
        self.fc_norm = copy.deepcopy(vit.fc_norm)
        self.num_prefix_tokens = vit.num_prefix_tokens

    def forward(self, vit: VisionTransformer, x: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """``x``: the last SA block's input (B, P+N, D); ``selected``: patch indices (B, k).

        ``vit`` supplies only the pooling rule and head dropout (no weights are read from it).
        """
        prefix = self.num_prefix_tokens
        batch, _, dim = x.shape
        prefix_index = torch.arange(prefix, device=x.device).expand(batch, prefix)
        query_index = torch.cat([prefix_index, selected + prefix], dim=1)
        x_sel = x.gather(1, query_index.unsqueeze(-1).expand(-1, -1, dim))

        h = self.block.norm1(x)
        h_sel = h.gather(1, query_index.unsqueeze(-1).expand(-1, -1, dim))  # LN is per token
        k, v = key_value_heads(self.block, h)
        q = query_heads(self.block, h_sel)
        z = block_output(self.block, x_sel, h_sel, attend(self.block, q, k, v))
        return vit.head_drop(self.fc_norm(pool(vit, self.norm(z))))
