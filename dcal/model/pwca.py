"""Pair-wise cross-attention (PWCA), paper §3.3, Eq. 5: one block of the PWCA stream.

An image I1's PWCA stream is computed with the SA blocks' own weights; at each of the first T
blocks its queries attend, with one softmax, over the concatenation of its own keys/values and
those of its distractor I2 *in the SA stream at the same block*:
``softmax(q_p [k_p ; k_SA(I2)]ᵀ/√d) [v_p ; v_SA(I2)]``.  Distractors are other images of the
batch, so their SA keys and values already exist and are reused (gradient included: this equals
running I2 through the shared SA weights again, at no extra cost).  Pairing an image with itself
duplicates every key, which leaves the softmax — and so the output — equal to SA's.  Blocks after
the first T run as plain self-attention with the same weights.
"""

from __future__ import annotations

from typing import Optional

import torch
from timm.models.vision_transformer import Block

from dcal.model.attention import BlockQKV, attend, block_output, block_qkv


def pair_wise_attention(
    block: Block, own: BlockQKV, sa_keys: torch.Tensor, sa_values: torch.Tensor, pair_index: torch.Tensor
) -> torch.Tensor:
    """Attention of the PWCA stream's queries over ``[own ; SA keys/values of the distractors]``.

    ``own``: the PWCA stream's per-head q/k/v at this block; ``sa_keys``/``sa_values``: the SA stream's
    (B, H, T, d) at this block; ``pair_index`` (B,): the batch index of each image's distractor.
    """
    keys = torch.cat([own.k, sa_keys.index_select(0, pair_index)], dim=2)
    values = torch.cat([own.v, sa_values.index_select(0, pair_index)], dim=2)
    return attend(block, own.q, keys, values)


def pwca_block(block: Block, tokens: torch.Tensor, sa_qkv: BlockQKV, pair_index: torch.Tensor,
               cross: bool, first_tokens: Optional[int] = None) -> torch.Tensor:
    """The PWCA stream's tokens after ``block``: pair-wise attention with the SA stream's keys and
    values of the distractors when ``cross`` (the first T blocks), else plain self-attention.
    ``first_tokens`` = n limits the output rows to the first n tokens, as for the SA stream's last block."""
    own = block_qkv(block, tokens, first_tokens)
    if cross:
        attended = pair_wise_attention(block, own, sa_qkv.k, sa_qkv.v, pair_index)
    else:
        attended = attend(block, own.q, own.k, own.v)
    return block_output(block, tokens[:, :first_tokens], own.h, attended)
