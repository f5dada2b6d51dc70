"""Which patch tokens GLCA queries (paper §3.2 and its ablation of the query selection).

- ``"rollout"`` (the method, Eq. 3): the top R share of patches by the class token's accumulated
  attention ``Ŝ_L`` (:mod:`dcal.model.rollout`).
- ``"last"``: the top R share by the last block's class-token attention alone, without
  accumulating the lower blocks (the paper's "penultimate layer only" control).
- ``"random"``: k patches drawn uniformly without replacement (the paper's random-query control).
  Training draws from torch's generator of the input's device, which the training loop seeds per
  process and saves in checkpoints; evaluation draws from a generator seeded afresh with 0 for
  every batch, so evaluating twice gives the same numbers.

k = max(1, round(R·N)) in every case (R = 10 % FGVC, 30 % Re-ID; paper §4).  Every selection
holds k distinct indices per image: ``topk`` returns distinct positions, and a caller's own
selection is checked for repeats (:func:`check_selected`).
"""

from __future__ import annotations

from typing import Optional

import torch

from dcal.errors import ConfigError

SELECTIONS = ("rollout", "last", "random")
"""The values of ``glca_selection`` (config ``model.glca_selection``)."""


def needs_attention(selection: str) -> bool:
    """Whether ``selection`` ranks patches by attention, so the blocks must return their maps."""
    return selection != "random"


def select_queries(
    selection: str,
    ratio: float,
    num_patches: int,
    *,
    rollout: Optional[torch.Tensor],
    last_attention: Optional[torch.Tensor],
    batch: int,
    device: torch.device,
    training: bool,
) -> Optional[torch.Tensor]:
    """The (B, k) patch indices GLCA queries under ``selection``, k = max(1, round(R·N)).

    ``rollout``: the class token's accumulated attention over the N patches (B, N);
    ``last_attention``: the last block's class-token attention over them (B, N); both ``None``
    when the attention maps were not computed, and then only ``"random"`` can select (``None``
    is returned otherwise).
    """
    k = num_selected(num_patches, ratio)
    if selection == "random":
        return select_random(batch, num_patches, k, device, training)
    scores = rollout if selection == "rollout" else last_attention
    return None if scores is None else select_top(scores, k)


def num_selected(num_patches: int, ratio: float) -> int:
    """k = max(1, round(R·N)) patch tokens for GLCA."""
    return max(1, round(ratio * num_patches))


@torch.no_grad()
def select_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, k) of the k patches with the largest ``scores`` (B, N), highest first."""
    return scores.topk(k, dim=1).indices


@torch.no_grad()
def select_random(batch: int, num_patches: int, k: int, device: torch.device, training: bool) -> torch.Tensor:
    """k distinct patch indices per image, uniformly at random (B, k)."""
    if training:
        keys = torch.rand(batch, num_patches, device=device)
    else:
        keys = torch.rand(batch, num_patches, generator=torch.Generator().manual_seed(0)).to(device)
    return keys.topk(k, dim=1).indices


def check_selected(selected: torch.Tensor, batch: int, num_patches: int) -> torch.Tensor:
    """``selected`` given by a caller: a LongTensor (B, k) of distinct patch indices in [0, N)
    (a repeated index would count one patch twice in GLCA's mean)."""
    if not isinstance(selected, torch.Tensor) or selected.dtype != torch.long or selected.dim() != 2 \
            or selected.shape[0] != batch or selected.shape[1] < 1:
        shape = tuple(selected.shape) if isinstance(selected, torch.Tensor) else type(selected).__name__
        raise ConfigError(f"selected must be a LongTensor (batch={batch}, k>=1) of patch indices; got {shape}")
    if selected.min() < 0 or selected.max() >= num_patches:
        raise ConfigError(f"selected holds patch indices outside [0, {num_patches}): "
                          f"{int(selected.min())}..{int(selected.max())}")
    ordered = selected.sort(dim=1).values
    repeated = ordered[:, 1:] == ordered[:, :-1]
    if repeated.any():
        row, column = (int(i) for i in repeated.nonzero()[0])
        raise ConfigError(f"selected repeats patch index {int(ordered[row, column])} in row {row}; "
                          "GLCA's queries must be distinct patches")
    return selected
