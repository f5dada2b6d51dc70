"""Global-local cross-attention (GLCA), paper §3.2, Eq. 4, with M = 1 block.

* GLCA has its own weights — a deep copy of the last SA block, of the final norm and of
  ``fc_norm`` — initialised from the backbone and then trained on their own.  It also copies the
  backbone's head dropout and pooling rule, so it never reads the backbone after it is built.
* It sits beside the last SA block L and reads that block's input ``x_{L-1}`` (B, P+N, D).
* **Queries: the k selected patch tokens only** — the paper's local query matrix Q^l, "the top R
  query vectors" with the largest class-token rollout (k = max(1, round(R·N))).  Keys and values
  are all P+N tokens of ``x_{L-1}``.
* It is a full pre-norm transformer block on the query tokens:
  ``y = x_sel + Attn(Q = LN(x_sel), K = V = LN(x))``, ``z = y + MLP(LN(y))``.
* **The GLCA feature is the mean of the k output tokens after GLCA's own final LayerNorm**, the
  pooled local embedding, and goes to GLCA's own head.  It is invariant to the order of the
  selected indices and changes when the set changes.

``readout="cls"`` is the other reading, kept for comparison: the P prefix tokens join the queries
and the class token is read out (as the backbone reads its own).  In one attention block each
query's output depends only on that query and the keys and values, so that feature is the same
whatever patches are selected — GLCA is then an untied copy of the last block applied to the
class token, and the selection does nothing.
"""

from __future__ import annotations

import copy

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from dcal.errors import ConfigError
from dcal.model.attention import attend, block_output, key_value_heads, query_heads
from dcal.model.backbone import pooling

READOUTS = ("local", "cls")
"""The values of ``glca_readout`` (config ``model.glca_readout``)."""


class GlobalLocalCrossAttention(nn.Module):
    """One GLCA block with its own final norm; ``forward`` returns the pre-head feature (B, D)."""

    def __init__(self, vit: VisionTransformer, readout: str = "local"):
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"glca_readout must be one of {', '.join(READOUTS)}; got {readout!r}")
        self.readout = readout
        self.block = copy.deepcopy(vit.blocks[-1])
        self.norm = copy.deepcopy(vit.norm)
        self.fc_norm = copy.deepcopy(vit.fc_norm)
        self.head_drop = copy.deepcopy(vit.head_drop)
        self.pool = pooling(vit)  # the backbone's pooling rule, for readout="cls"
        self.num_prefix_tokens = vit.num_prefix_tokens

    def forward(self, x: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """``x``: the last SA block's input (B, P+N, D); ``selected``: patch indices (B, k)."""
        prefix = self.num_prefix_tokens
        batch, _, dim = x.shape
        query_index = selected + prefix
        if self.readout == "cls":
            prefix_index = torch.arange(prefix, device=x.device).expand(batch, prefix)
            query_index = torch.cat([prefix_index, query_index], dim=1)
        gather_index = query_index.unsqueeze(-1).expand(-1, -1, dim)
        x_sel = x.gather(1, gather_index)

        h = self.block.norm1(x)
        h_sel = h.gather(1, gather_index)  # LayerNorm is per token
        k, v = key_value_heads(self.block, h)
        q = query_heads(self.block, h_sel)
        z = block_output(self.block, x_sel, h_sel, attend(self.block, q, k, v))
        if self.readout == "local":
            feature = self.fc_norm(self.norm(z).mean(dim=1))
        else:
            feature = self.fc_norm(self.pool(self.norm(z)))
        return self.head_drop(feature)
