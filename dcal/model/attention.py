"""Self- and cross-attention computed with the modules of a timm ``Block``.

DCAL needs three things from a transformer block that ``Block.forward`` does not expose: the
keys and values of the self-attention (SA) stream (PWCA attends to them, paper §3.3), the
head-averaged attention probabilities (for attention rollout, §3.2), and attention whose queries
are a subset of the tokens (GLCA, §3.2; also a last block whose patch rows no head reads).  The
functions here split ``Block.forward`` at those seams and otherwise call the block's own
submodules in timm's order — ``norm1``, ``attn.qkv``, ``attn.q_norm``/``attn.k_norm``, attention,
``attn.norm``, ``attn.gate``, ``attn.proj``, ``attn.proj_drop``, ``ls1``, ``drop_path1``, ``norm2``,
``mlp``, ``ls2``, ``drop_path2`` — so a block driven through them computes what timm's ``Block``
computes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block


class BlockQKV(NamedTuple):
    """A block's normalised input ``h = norm1(x)`` of its query rows and its per-head q (B, H, Tq, d),
    k and v (B, H, T, d); Tq = T unless only the first tokens are queried."""

    h: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor


def block_qkv(block: Block, x: torch.Tensor, first_tokens: Optional[int] = None) -> BlockQKV:
    """``norm1`` then ``attn.qkv`` split into heads, with ``q_norm``/``k_norm`` applied (timm order).

    With ``first_tokens`` = n, only the first n tokens are queried: ``h`` and ``q`` cover those
    rows, ``k`` and ``v`` all tokens (what a block whose other output rows are never read needs).
    """
    attn: Attention = block.attn
    h = block.norm1(x)
    if first_tokens is not None:
        k, v = key_value_heads(block, h)
        h = h[:, :first_tokens]
        return BlockQKV(h, query_heads(block, h), k, v)
    batch, tokens, _ = h.shape
    qkv = attn.qkv(h).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    return BlockQKV(h, attn.q_norm(q), attn.k_norm(k), v)


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


EXPLICIT_BACKWARD_DEVICES = ("cpu",)
"""Device types on which the SA stream's attention is computed explicitly under autograd too, its
(B·H, T, T) probabilities kept for the backward pass: on this project's CPUs that measured faster
than the fused kernel plus a separate map (``benchmarks/model_overhead.py``).  Elsewhere (CUDA) the
fused kernel produces the output and keeps no such tensor — for ViT-B at 448² and batch 16 they
would hold about 5.7 GB — and the map is computed beside it without gradient."""


def attention_probabilities(attn: Attention, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``softmax((q·scale) kᵀ)`` for q (B·H, Tq, d) and k (B·H, T, d), as timm's unfused path computes
    it; without autograd the scaled product and the softmax are done in place in one tensor."""
    if torch.is_grad_enabled():
        return torch.bmm(q * attn.scale, k.transpose(1, 2)).softmax(dim=-1)
    probs = torch.baddbmm(q.new_zeros(()), q, k.transpose(1, 2), beta=0, alpha=attn.scale)
    return torch.softmax(probs, dim=-1, out=probs)


def self_attention_with_map(block: Block, qkv: BlockQKV) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-attention of a block, (B, H, Tq, d), and the sum over its H heads of the softmax
    attention probabilities, (B, Tq, T) float32 without gradient: the rows of ``H·S_l`` for the
    rollout (paper §3.2; the rollout only selects tokens, and takes the 1/H there).

    The fused kernel returns no probabilities.  Without autograd, and under autograd on the devices
    in :data:`EXPLICIT_BACKWARD_DEVICES`, they are computed once, explicitly, and give both the
    output (attention dropout, ``·v``) and the map; otherwise the output comes from the fused kernel
    and the probabilities are computed beside it without gradient.
    """
    attn: Attention = block.attn
    batch, num_heads, query_len, head_dim = qkv.q.shape
    tokens = qkv.k.shape[2]

    def per_head(t: torch.Tensor) -> torch.Tensor:  # (B, H, n, d) -> (B·H, n, d)
        return t.reshape(batch * num_heads, t.shape[2], head_dim)

    if torch.is_grad_enabled() and qkv.q.device.type not in EXPLICIT_BACKWARD_DEVICES:
        out = attend(block, qkv.q, qkv.k, qkv.v)
        with torch.no_grad():
            probs = attention_probabilities(attn, per_head(qkv.q), per_head(qkv.k))
    else:
        probs = attention_probabilities(attn, per_head(qkv.q), per_head(qkv.k))
        out = torch.bmm(attn.attn_drop(probs), per_head(qkv.v)).view(batch, num_heads, query_len, head_dim)
    with torch.no_grad():
        head_sum = probs.view(batch, num_heads, query_len, tokens).sum(dim=1, dtype=torch.float32)
    return out, head_sum


def block_output(block: Block, x: torch.Tensor, h: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of ``Block.forward`` after ``softmax(qkᵀ)v``: merge heads, ``attn.norm``, gate,
    ``proj``, ``proj_drop``, ``ls1``, ``drop_path1``, residual, then the MLP half.

    ``x`` is the residual stream of the query tokens, ``h = norm1(x)`` (the gate reads it) and
    ``attended`` is (B, H, Tq, d).
    """
    attn: Attention = block.attn
    batch, _, query_len, _ = attended.shape
    o = attended.transpose(1, 2).reshape(batch, query_len, attn.num_heads * attn.head_dim)
    o = attn.norm(o)
    gate = getattr(attn, "gate", None)  # timm >= 1.0.25
    if gate is not None:
        o = o * gate(h).sigmoid()
    o = attn.proj_drop(attn.proj(o))
    x = x + block.drop_path1(block.ls1(o))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
