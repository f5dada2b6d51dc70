"""Pairwise distances between Re-ID feature sets, computed on torch in blocks of rows.

Two metrics, as the Re-ID toolkits (torchreid, fast-reid, TransReID) define them:

* ``"euclidean"``: the *squared* Euclidean distance of the features as given,
  ``‖q‖² + ‖g‖² − 2·q·gᵀ`` — the same expression and order of operations as torchreid's
  ``euclidean_squared_distance`` (the norms' sum, then one ``addmm``);
* ``"cosine"``: ``1 − cos(q, g)``, i.e. one minus the product of the L2-normalised features.

Features stay in float32 (or float64 if given so); other dtypes are cast to float32.
"""

from __future__ import annotations

import torch

METRICS = ("euclidean", "cosine")


class PairwiseDistance:
    """Distances from row blocks of ``queries`` to all of ``gallery``.

    The gallery side (its squared norms, or its normalised copy for ``"cosine"``) is prepared
    once; :meth:`__call__` then costs one matrix product per block of queries.
    """

    def __init__(self, gallery: torch.Tensor, metric: str = "euclidean"):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        if metric == "cosine":
            self.gallery = torch.nn.functional.normalize(gallery, dim=1)
            self.gallery_sq = None
        else:
            self.gallery = gallery
            self.gallery_sq = gallery.pow(2).sum(dim=1)

    def __call__(self, queries: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The (len(queries), len(gallery)) distance block, written into ``out`` if given."""
        queries = queries.to(self.gallery.dtype)
        if self.metric == "cosine":
            queries = torch.nn.functional.normalize(queries, dim=1)
            ones = torch.ones((), dtype=queries.dtype, device=queries.device)
            return torch.addmm(ones, queries, self.gallery.T, alpha=-1, out=out)
        query_sq = queries.pow(2).sum(dim=1, keepdim=True)
        return torch.add(query_sq, self.gallery_sq, out=out).addmm_(queries, self.gallery.T, beta=1, alpha=-2)

    def between(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Distances between gallery items ``first[n]`` and ``second[n]`` (index tensors), elementwise."""
        a, b = self.gallery[first], self.gallery[second]
        dot = torch.linalg.vecdot(a, b)
        if self.metric == "cosine":
            return 1 - dot
        return self.gallery_sq[first] + self.gallery_sq[second] - 2 * dot
