"""Pairwise distances between Re-ID feature sets, computed on torch in blocks of rows.

Two metrics, as the Re-ID toolkits (torchreid, fast-reid, TransReID) define them:

* ``"euclidean"``: the *squared* Euclidean distance of the features as given,
  ``‖q‖² + ‖g‖² − 2·q·gᵀ`` — the same expression and order of operations as torchreid's
  ``euclidean_squared_distance`` (the norms' sum, then one ``addmm``);
* ``"cosine"``: ``1 − cos(q, g)``, i.e. one minus the product of the L2-normalised features.

Features stay in float32 (or float64 if given so); other dtypes are cast to float32.

Numerical stability.  The expanded squared distance cancels catastrophically when the features
share a large common offset (``‖q‖²`` and ``2·q·gᵀ`` are then huge and nearly equal).  The distance
is invariant to translation, so when the gallery's mean dominates the spread of the features
(squared norm above 4x their mean squared distance to it) both sets are first centred on it
(computed in float64; rounded to a multiple of a power of two below the spread, so features on a
grid such as integers stay exact and exactly equal distances stay equal).  Features without such
an offset (L2-normalised ones, say) are used as given, without a copy.  With ``rank_only=True``
(what the ranking metrics use) features whose largest magnitude is outside 2^±30 are also divided
by a power of two near it, so features of any scale (1e-30, 1e20) neither underflow nor overflow;
distances then come out in those units, which changes no ranking.  For ``"cosine"`` each row is
divided by a power of two near its own largest magnitude before normalising, which changes no
cosine either.
"""

from __future__ import annotations

import torch

METRICS = ("euclidean", "cosine")
"""The Re-ID distances (config ``eval.metric``)."""
#: Largest magnitudes whose squared distances neither overflow nor underflow float32 (``rank_only``).
SAFE_RANGE = (2.0**-30, 2.0**30)


class PairwiseDistance:
    """Distances from row blocks of ``queries`` to all of ``gallery``.

    The gallery side (its squared norms, or its normalised copy for ``"cosine"``) is prepared
    once; :meth:`__call__` then costs one matrix product per block of queries.
    """

    def __init__(self, gallery: torch.Tensor, metric: str = "euclidean", *, rank_only: bool = False):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        if metric == "cosine":
            self.gallery = _unit_rows(gallery)
            self.gallery_sq = None
            return
        self.centre = _offset(gallery)
        self.gallery = gallery if self.centre is None else gallery - self.centre
        self.scale = 1.0
        if rank_only and len(gallery):
            low, high = torch.aminmax(self.gallery)
            peak = max(-float(low), float(high))
            if not SAFE_RANGE[0] <= peak <= SAFE_RANGE[1]:
                self.scale = _power_of_two_below(peak)
                self.gallery = self.gallery / self.scale
        self.gallery_sq = self.gallery.pow(2).sum(dim=1)

    def __call__(self, queries: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The (len(queries), len(gallery)) distance block, written into ``out`` if given."""
        queries = queries.to(self.gallery.dtype)
        if self.metric == "cosine":
            queries = _unit_rows(queries)
            ones = torch.ones((), dtype=queries.dtype, device=queries.device)
            return torch.addmm(ones, queries, self.gallery.T, alpha=-1, out=out)
        if self.centre is not None:
            queries = queries - self.centre
        if self.scale != 1.0:
            queries = queries / self.scale
        query_sq = queries.pow(2).sum(dim=1, keepdim=True)
        return torch.add(query_sq, self.gallery_sq, out=out).addmm_(queries, self.gallery.T, beta=1, alpha=-2)

    def between(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Distances between gallery items ``first[n]`` and ``second[n]`` (index tensors), elementwise."""
        a, b = self.gallery[first], self.gallery[second]
        dot = torch.linalg.vecdot(a, b)
        if self.metric == "cosine":
            return 1 - dot
        return self.gallery_sq[first] + self.gallery_sq[second] - 2 * dot


def _power_of_two_below(value: torch.Tensor) -> float:
    """The largest power of two not above ``value`` (1 for 0 or a non-finite value); dividing by it is exact."""
    value = float(value)
    if value <= 0 or not torch.isfinite(torch.tensor(value)):
        return 1.0
    return 2.0 ** torch.floor(torch.log2(torch.tensor(value, dtype=torch.float64))).item()


def _unit_rows(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, each first divided by a power of two near its largest magnitude
    (so tiny rows do not meet ``normalize``'s epsilon and huge ones do not overflow)."""
    low, high = torch.aminmax(features, dim=1, keepdim=True)
    peak = torch.maximum(-low, high)
    exponent = torch.where(peak > 0, torch.floor(torch.log2(peak.clamp(min=torch.finfo(peak.dtype).tiny))), 0)
    return torch.nn.functional.normalize(torch.ldexp(features, -exponent.to(torch.int32)), dim=1)


def _offset(gallery: torch.Tensor):
    """The gallery's mean per dimension when it dominates the spread of the features around it
    (its squared norm above 4x their mean squared distance to it, measured on up to 1,024 rows),
    rounded to a multiple of a power of two below that spread; else None (no centring needed)."""
    if not len(gallery):
        return None
    mean = gallery.mean(dim=0, dtype=torch.float64)
    spread = (gallery[:1024].to(torch.float64) - mean).pow(2).sum(dim=1).mean()
    if mean.pow(2).sum() <= 4 * spread:
        return None
    step = _power_of_two_below((spread / gallery.shape[1]).sqrt())
    return (mean / step).round().mul(step).to(gallery.dtype)
