"""Self- and cross-attention computed with the modules of a timm ``Block``.

DCAL needs three things from a transformer block that ``Block.forward`` does not expose: the
keys and values of the self-attention (SA) stream (PWCA attends to them, paper §3.3), the
head-averaged attention probabilities (for attention rollout, §3.2), and attention whose queries
are a subset of the tokens (GLCA, §3.2).  The functions here split ``Block.forward`` at those
seams and otherwise call the block's own submodules in timm's order — ``norm1``, ``attn.qkv``,
``attn.q_norm``/``attn.k_norm``, attention, ``attn.norm``, ``attn.gate``, ``attn.proj``,
``attn.proj_drop``, ``ls1``, ``drop_path1``, ``norm2``, ``mlp``, ``ls2``, ``drop_path2`` — so a
block driven through them computes what timm's ``Block`` computes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block


class Heads(NamedTuple):
    """A block's normalised input ``h = norm1(x)`` and its per-head q, k, v, each (B, H, T, d)."""

    h: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor


def block_heads(block: Block, x: torch.Tensor) -> Heads:
    """``norm1`` then ``attn.qkv`` split into heads, with ``q_norm``/``k_norm`` applied (timm order)."""
    attn: Attention = block.attn
    h = block.norm1(x)
    batch, tokens, _ = h.shape
    qkv = attn.qkv(h).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    return Heads(h, attn.q_norm(q), attn.k_norm(k), v)


def query_heads(block: Block, h: torch.Tensor) -> torch.Tensor:
    """Queries only, from the q-slice of ``attn.qkv`` (used by GLCA for its selected tokens)."""
    attn: Attention = block.attn
    dim = attn.num_heads * attn.head_dim
    bias = attn.qkv.bias[:dim] if attn.qkv.bias is not None else None
    q = F.linear(h, attn.qkv.weight[:dim], bias)
    q = q.reshape(h.shape[0], h.shape[1], attn.num_heads, attn.head_dim).transpose(1, 2)
    return attn.q_norm(q)


def key_value_heads(block: Block, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values only, from the k- and v-slices of ``attn.qkv`` (``k_norm`` applied)."""
    attn: Attention = block.attn
    dim = attn.num_heads * attn.head_dim
    bias = attn.qkv.bias[dim:] if attn.qkv.bias is not None else None
    kv = F.linear(h, attn.qkv.weight[dim:], bias)
    kv = kv.reshape(h.shape[0], h.shape[1], 2, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    k, v = kv.unbind(0)
    return attn.k_norm(k), v


def attend(block: Block, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ/√d) v with PyTorch's fused kernel and the block's attention dropout."""
    attn: Attention = block.attn
    dropout = attn.attn_drop.p if attn.training else 0.0
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)


def head_averaged_attention(
    q: torch.Tensor, k: torch.Tensor, scale: float, scratch: torch.Tensor, head_mean: torch.Tensor
) -> torch.Tensor:
    """softmax(q kᵀ·scale) per head written into ``scratch`` (B, H, T, T), its mean over heads into
    ``head_mean`` (B, T, T, float32); returns ``scratch``.  No gradient.

    Everything is written in place into buffers the caller allocates once per forward pass: on
    CPU, fresh (B, H, T, T) tensors in every block cost more in page faults than the arithmetic.
    """
    with torch.no_grad():
        for head in range(q.shape[1]):  # per head: bmm reads the strided q/k views without copies
            torch.bmm(q[:, head], k[:, head].transpose(1, 2), out=scratch[:, head])
        scratch.mul_(scale)
        torch.softmax(scratch, dim=-1, out=scratch)
        torch.mean(scratch, dim=1, dtype=head_mean.dtype, out=head_mean)
    return scratch


def self_attention(
    block: Block, heads: Heads, head_mean: Optional[torch.Tensor] = None, scratch: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Self-attention of a block; with ``head_mean`` given, also its head-averaged softmax
    attention ``S_l`` for the rollout, written into ``head_mean`` (B, T, T) without gradient
    (paper §3.2: the rollout only selects tokens).

    The output always equals timm's: without autograd it is computed from the same explicit
    probabilities (``scratch`` (B, H, T, T), then dropout, then ``·v`` — timm's unfused path), so
    the map costs only the head mean; with autograd it comes from the fused kernel, which keeps no
    (B, H, T, T) tensor for the backward pass, and the probabilities are computed beside it.
    """
    attn: Attention = block.attn
    q, k, v = heads.q, heads.k, heads.v
    if head_mean is None:
        return attend(block, q, k, v)
    if torch.is_grad_enabled():
        out = attend(block, q, k, v)
        head_averaged_attention(q.detach(), k.detach(), attn.scale, scratch, head_mean)
        return out
    probs = attn.attn_drop(head_averaged_attention(q, k, attn.scale, scratch, head_mean))
    batch, num_heads, tokens, head_dim = v.shape
    out = v.new_empty((batch, tokens, num_heads, head_dim))  # the layout block_output merges for free
    for head in range(num_heads):
        torch.bmm(probs[:, head], v[:, head], out=out[:, :, head])
    return out.transpose(1, 2)


def block_output(block: Block, x: torch.Tensor, h: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of ``Block.forward`` after ``softmax(qkᵀ)v``: merge heads, ``attn.norm``, gate,
    ``proj``, ``proj_drop``, ``ls1``, ``drop_path1``, residual, then the MLP half.

    ``x`` is the residual stream of the query tokens, ``h = norm1(x)`` (the gate reads it) and
    ``attended`` is (B, H, Tq, d).
    """
    attn: Attention = block.attn
    batch, _, queries, _ = attended.shape
    o = attended.transpose(1, 2).reshape(batch, queries, attn.num_heads * attn.head_dim)
    o = attn.norm(o)
    gate = getattr(attn, "gate", None)  # timm >= 1.0.25
    if gate is not None:
        o = o * gate(h).sigmoid()
    o = attn.proj_drop(attn.proj(o))
    x = x + block.drop_path1(block.ls1(o))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
