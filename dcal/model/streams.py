"""The SA and PWCA token streams through the backbone's blocks, in one pass (paper §3.1, §3.3).

Each block runs the SA stream — yielding, when the rollout is wanted, its head-summed attention
map (§3.2) — and, when pairs are given, the PWCA stream, which reads the SA stream's keys and
values of the same block (:mod:`dcal.model.pwca`).  When the head reads only the prefix tokens
(class-token pooling; distilled DeiT), the last block computes the prefix rows only: its patch
rows reach no output, and the rollout needs only the class token's row of its attention.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch.utils.checkpoint import checkpoint

from dcal.model.attention import attend, block_output, block_qkv, self_attention_with_map
from dcal.model.backbone import head_reads_prefix_only
from dcal.model.pwca import pwca_block


@dataclass(frozen=True)
class BlockStep:
    """What one block computes for both streams."""

    block: Block
    cross: bool
    """PWCA attends to its distractor's SA keys and values at this block (one of the first T)."""
    first_tokens: Optional[int]
    """Compute the output rows of the first n tokens only (``None``: every row)."""
    rollout: bool
    """Also return the block's head-summed attention map, for the rollout."""
    recompute: bool
    """Recompute the block in the backward pass instead of keeping its activations."""

    def __call__(self, tokens: torch.Tensor, pwca_tokens: Optional[torch.Tensor], pair_index: Optional[torch.Tensor]):
        """``(SA tokens, PWCA tokens, head-summed map)`` after the block; the PWCA tokens stay ``None``
        without ``pair_index``, the map is ``None`` unless :attr:`rollout`."""
        if self.recompute:
            return checkpoint(self._compute, tokens, pwca_tokens, pair_index, use_reentrant=False)
        return self._compute(tokens, pwca_tokens, pair_index)

    def _compute(self, tokens, pwca_tokens, pair_index):
        qkv = block_qkv(self.block, tokens, self.first_tokens)
        head_sum = None
        if self.rollout:
            attended, head_sum = self_attention_with_map(self.block, qkv)
        else:
            attended = attend(self.block, qkv.q, qkv.k, qkv.v)
        if pair_index is not None:
            pwca_tokens = pwca_block(self.block, pwca_tokens, qkv, pair_index, self.cross, self.first_tokens)
        return block_output(self.block, tokens[:, : self.first_tokens], qkv.h, attended), pwca_tokens, head_sum


class Streams(NamedTuple):
    """The outputs of :func:`run_streams`."""

    sa: torch.Tensor
    """The SA stream after the last block."""
    pwca: Optional[torch.Tensor]
    """The PWCA stream after the last block (``None`` without pairs)."""
    last_input: torch.Tensor
    """x_{L-1}, the SA stream entering the last block (GLCA reads it), (B, P+N, D)."""
    maps: list
    """The head-summed attention rows H·S_1 … H·S_L (empty unless the rollout was asked for)."""


def run_streams(vit: VisionTransformer, tokens: torch.Tensor, pair_index: Optional[torch.Tensor], *,
                pwca_blocks: int, rollout: bool, recompute: bool) -> Streams:
    """The embedded ``tokens`` through every block of ``vit``: the SA stream, and the PWCA stream
    (started from the same tokens) when ``pair_index`` is given, pair-wise in the first
    ``pwca_blocks`` blocks."""
    steps = [BlockStep(block, index < pwca_blocks, None, rollout, recompute) for index, block in enumerate(vit.blocks)]
    *lower, last = steps
    if head_reads_prefix_only(vit):
        last = replace(last, first_tokens=vit.num_prefix_tokens)
    pwca_tokens = tokens if pair_index is not None else None
    maps = []
    for step in lower:
        tokens, pwca_tokens, head_sum = step(tokens, pwca_tokens, pair_index)
        maps.append(head_sum)
    sa, pwca_tokens, head_sum = last(tokens, pwca_tokens, pair_index)
    maps.append(head_sum)
    return Streams(sa, pwca_tokens, tokens, maps if rollout else [])
