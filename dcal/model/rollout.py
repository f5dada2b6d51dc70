"""Attention rollout (Abnar & Zuidema 2020) as DCAL uses it to pick local regions (paper §3.2, Eq. 3).

With ``S_l`` the head-averaged softmax attention of SA block l, the residual is accounted for by
``S̄_l = 0.5·S_l + 0.5·I`` and the accumulated attention is ``Ŝ_L = S̄_L · S̄_{L-1} ⋯ S̄_1``.
Only the class token's row of ``Ŝ_L`` is needed, so it is computed top down as a chain of
vector–matrix products, ``r ← e_clsᵀ S̄_L``, ``r ← r S̄_{L-1}``, …, ``r ← r S̄_1``, which costs
O(L·T²) per image instead of the O(L·T³) of the matrix chain.  Nothing here carries a gradient.
"""

from __future__ import annotations

from typing import Sequence

import torch


@torch.no_grad()
def class_token_rollout(
    last_row: torch.Tensor, lower_maps: Sequence[torch.Tensor], num_heads: int = 1
) -> torch.Tensor:
    """The class token's row of ``Ŝ_L``, (B, T), over all P+N tokens.

    ``last_row``: the class token's row of ``H·S_L`` (B, T); ``lower_maps``: ``H·S_1 … H·S_{L-1}``,
    each (B, T, T), in block order (a list or an (L-1, B, T, T) tensor) — the attention
    probabilities summed over ``num_heads`` = H heads, whose mean ``S_l`` is (H = 1: the means
    themselves).  The class token is token 0.
    """
    half_mean = 0.5 / num_heads
    r = half_mean * last_row.float()
    r[:, 0] += 0.5
    for index in range(len(lower_maps) - 1, -1, -1):  # r ← r·(0.5·S_l + 0.5·I)
        row = r.unsqueeze(1)
        r = torch.baddbmm(row, row, lower_maps[index].float(), beta=0.5, alpha=half_mean).squeeze(1)
    return r
