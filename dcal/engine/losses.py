"""DCAL's training objective (paper §3.4): per-branch losses balanced by learned uncertainty.

``L = ½ · Σ_b (exp(−w_b)·L_b + w_b)`` over the branches b ∈ {SA, GLCA, PWCA} (Kendall et al. 2018,
in the form FairMOT uses), with ``w_b`` learnable scalars that start at 0 and get no weight
decay (the optimiser gives them a parameter group of their own, :mod:`dcal.engine.optimizer`).
A run that trains one branch — the baseline — uses that branch's plain loss ``L_sa`` with weight 1,
as TransReID and DeiT train it (the paper's baseline rows are those runs): its ``w_sa`` is kept in
the state dict but frozen and unused.  ``L_b`` is cross-entropy for FGVC ("standard cross-entropy"), and for Re-ID
cross-entropy on the BNNeck logits plus a batch-hard triplet loss on the feature before the
BNNeck — by default as TransReID's ViT configs, whose settings the paper's Re-ID experiments
follow: no label smoothing and the soft-margin triplet loss; label smoothing and a hard margin
(e.g. 0.3) are options.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dcal.errors import ConfigError
from dcal.model.dcal_model import TASKS

BRANCHES = ("sa", "glca", "pwca")


def uncertainty_weighted(losses: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return 0.5 * sum(torch.exp(-weights[b]) * loss + weights[b] for b, loss in losses.items())


def batch_hard_triplet(features: torch.Tensor, targets: torch.Tensor, margin: Optional[float] = None) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances.

    For every anchor: its farthest positive and nearest negative in the batch, then
    ``mean(log(1 + exp(d(a, p) − d(a, n))))`` (soft margin, ``margin=None``) or
    ``mean(max(0, d(a, p) − d(a, n) + margin))``.  Anchors without a positive or a negative in
    the batch are left out; a batch with no valid anchor gives 0 (still connected to the graph).
    """
    features = features.float()
    distances = torch.cdist(features, features).clamp_min(1e-12)
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    positive = same & ~eye
    valid = positive.any(dim=1) & (~same).any(dim=1)
    hardest_positive = distances.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(dim=1)
    gap = (hardest_positive - hardest_negative).where(valid, 0.0)
    losses = F.softplus(gap) if margin is None else F.relu(gap + margin)
    # The mean over valid anchors without reading ``valid`` on the host (no sync per micro-batch).
    return (losses * valid).sum() / valid.sum().clamp(min=1)


class DCALLoss(nn.Module):
    """The DCAL criterion; holds the learnable uncertainty weights ``w_b`` (``self.weights``).

    ``forward(outputs, targets)`` takes the dict of
    :meth:`dcal.model.dcal_model.DCAL.forward_branches` and the class/identity labels (B,) and
    returns ``(total, per_branch)``, ``per_branch`` mapping each branch to its unweighted ``L_b``.
    Every branch in ``branches`` must be present in ``outputs``; PWCA's loss uses I1's labels.
    With a single branch, ``total`` is that branch's ``L_b`` unweighted (:attr:`weighted` is False).

    Args:
        task: ``"fgvc"`` (cross-entropy) or ``"reid"`` (cross-entropy + triplet).
        branches: the branches trained (those the model produces).
        label_smoothing: for the cross-entropy (0: none, as the paper).
        triplet_margin: Re-ID only; ``None``: soft margin (TransReID's ``NO_MARGIN: True``).
    """

    def __init__(
        self,
        task: str = "fgvc",
        branches: Sequence[str] = BRANCHES,
        label_smoothing: float = 0.0,
        triplet_margin: Optional[float] = None,
    ):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task must be {' or '.join(map(repr, TASKS))}; got {task!r}")
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown or not branches:
            raise ConfigError(f"branches must be a non-empty subset of {BRANCHES}; got {list(branches)}")
        self.task = task
        self.branches = tuple(branches)
        self.label_smoothing = label_smoothing
        self.triplet_margin = triplet_margin
        self.weighted = len(self.branches) > 1
        self.weights = nn.ParameterDict({b: nn.Parameter(torch.zeros(()), requires_grad=self.weighted)
                                         for b in self.branches})

    @classmethod
    def for_model(cls, model: nn.Module, **kwargs) -> "DCALLoss":
        """The criterion for the branches ``model`` trains (GLCA and PWCA may be off)."""
        branches = ["sa"]
        if getattr(model, "glca", None) is not None:
            branches.append("glca")
        if getattr(model, "pwca_blocks", 0) > 0:
            branches.append("pwca")
        return cls(task=model.task, branches=branches, **kwargs)

    def branch_loss(self, output: Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """``L_b`` of one branch's ``{"feat", "logits"}``."""
        loss = F.cross_entropy(output["logits"].float(), targets, label_smoothing=self.label_smoothing)
        if self.task == "reid":
            loss = loss + batch_hard_triplet(output["feat"], targets, self.triplet_margin)
        return loss

    def forward(
        self, outputs: Mapping[str, Mapping[str, torch.Tensor]], targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        missing = [b for b in self.branches if b not in outputs]
        if missing:
            raise ConfigError(
                f"the model's outputs lack the branches {missing} this loss trains "
                f"(got {sorted(k for k in outputs if k in BRANCHES)}); pass pair_index for PWCA"
            )
        per_branch = {b: self.branch_loss(outputs[b], targets) for b in self.branches}
        if not self.weighted:
            return per_branch[self.branches[0]], per_branch
        return uncertainty_weighted(per_branch, self.weights), per_branch

    def weight_values(self) -> dict[str, float]:
        """``{"loss_weight_<branch>": w_b}`` of a multi-branch loss (empty for a single branch)."""
        return {f"loss_weight_{b}": w.detach().item() for b, w in self.weights.items()} if self.weighted else {}
