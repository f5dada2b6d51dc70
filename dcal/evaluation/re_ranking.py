"""k-reciprocal re-ranking (Zhong et al., Re-ranking Person Re-identification with k-reciprocal
Encoding, CVPR 2017), exact to the authors' ``re_ranking`` function, in bounded memory.

The authors' code (copied into torchreid, fast-reid and TransReID) builds dense (Q+G)² matrices —
distances, their argsort, the encoding ``V``, the Jaccard distances — about 37 GB each in float32 at
MSMT17's 11,659 + 82,161 images. Every one of them is sparse or needed only a few rows at a time:

1. one pass over the (Q+G)² distances in row chunks keeps, per image, its ``k1 + 1`` nearest
   neighbours and its largest distance (the authors divide row i by the maximum of column i);
2. k-reciprocal sets ``R(i, k1)``, their expansion by the ``R(c, round(k1/2))`` of candidates
   sharing more than 2/3 of them (Eq. 9 of the paper), and the Gaussian-kernel encoding
   ``V_i = exp(−d(i, ·)) / Σ`` (Eq. 10) are computed on the neighbour lists: ``V`` is a sparse
   matrix with at most a few hundred entries per row;
3. local query expansion (Eq. 11) averages the ``V`` rows of each image's ``k2`` nearest
   neighbours, still sparse;
4. the Jaccard distance (Eq. 12, ``1 − Σ min(V_q, V_g) / Σ max(V_q, V_g)``, computed as
   ``1 − m / (2 − m)`` with ``m = Σ min``) is accumulated through an inverted index of ``V``'s
   gallery rows, one query chunk at a time, and mixed with the original distance:
   ``d* = (1 − λ)·d_J + λ·d`` (Eq. 13).

Step 4 yields the final (Q × G) distances in query chunks (:func:`re_ranking_chunks`), which
:func:`dcal.evaluation.reid_metrics_from_distances` evaluates as they come. Differences from the
authors' code: ``V`` is kept in float32 instead of float16, and ties among equally distant
neighbours are ordered by ``torch.topk`` (then by index) instead of an unstable ``argsort``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dcal.evaluation.distances import METRICS, PairwiseDistance
from dcal.errors import EvaluationError
from dcal.evaluation.metric_inputs import MEMORY_BUDGET, as_features, check_features, memory_budget, resolve_chunk_size

#: Entries of a sparse product (or query-gallery pairs of the Jaccard sums) handled at once.
SPARSE_BATCH = 2**22


def re_ranking(
    qf, gf, *, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, metric: str = "euclidean", device=None
) -> np.ndarray:
    """The re-ranked (Q × G) distance matrix as one float32 array (see :func:`re_ranking_chunks`).

    It takes ``4·Q·G`` bytes (3.8 GB at MSMT17 size); to evaluate without holding it, pass
    :func:`re_ranking_chunks` to :func:`dcal.evaluation.reid_metrics_from_distances`.
    """
    chunks = re_ranking_chunks(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value, metric=metric, device=device)
    return torch.cat([chunk.cpu() for chunk in chunks]).numpy()


def re_ranking_chunks(
    qf, gf, *, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, metric: str = "euclidean", chunk_size=None,
    device=None,
) -> Iterator[torch.Tensor]:
    """Yield the re-ranked query × gallery distances as consecutive row chunks (float32 tensors).

    ``qf`` (Q × D) and ``gf`` (G × D) are features (torch or numpy); ``metric`` is the original
    distance (``"euclidean"``: squared Euclidean, as in the authors' code; ``"cosine"``). ``k1``,
    ``k2`` and ``lambda_value`` are the paper's k1, k2 and λ (defaults 20, 6, 0.3, as published).
    Chunks hold ``chunk_size`` queries (default: as many as fit
    :func:`~dcal.evaluation.reid_metrics.memory_budget`).  ``device`` (default: the CPU) is where
    everything is computed and the chunks are yielded, e.g. the model's CUDA device.
    """
    if metric not in METRICS:
        raise EvaluationError(f"metric must be one of {METRICS}, got {metric!r}")
    for name, value in (("k1", k1), ("k2", k2)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise EvaluationError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= lambda_value <= 1:
        raise EvaluationError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    qf, gf = as_features("qf", qf).to(device), as_features("gf", gf).to(device)
    check_features(qf, gf)
    num_query, num_gallery = len(qf), len(gf)
    num_all = num_query + num_gallery
    if k1 + 1 > num_all or k2 > num_all:
        raise EvaluationError(f"k1 + 1 ({k1 + 1}) and k2 ({k2}) must not exceed the {num_all} images")
    budget = memory_budget(device)
    with device:  # every tensor made below lives on the device (left before each yield)
        features = torch.cat([qf, gf.to(qf.dtype)])
        distance = PairwiseDistance(features, metric)
        neighbours, row_max = _nearest_neighbours(features, distance, k1 + 1, budget)
        encoding = _encoding(distance, neighbours, row_max, k1)
        if k2 != 1:
            encoding = _query_expansion(encoding, neighbours[:, :k2])
        inverted = _inverted_index(encoding, num_query)
        gallery_distance = PairwiseDistance(gf.to(qf.dtype), metric)
    step = resolve_chunk_size(chunk_size, num_gallery, bytes_per_pair=12, budget=budget)
    for start in range(0, num_query, step):
        stop = min(start + step, num_query)
        with device:
            overlap = _min_overlap(encoding, inverted, start, stop, num_gallery)
            jaccard = 1 - overlap / (2 - overlap)
            original = gallery_distance(qf[start:stop]) / row_max[start:stop, None]
            chunk = jaccard.mul_(1 - lambda_value).add_(original.to(jaccard.dtype), alpha=lambda_value)
        yield chunk


def _nearest_neighbours(
    features: torch.Tensor, distance: PairwiseDistance, k: int, budget: int = MEMORY_BUDGET
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's ``k`` nearest images (itself first, ordered by distance then index), and the
    largest distance to it from any image (the authors' column maximum)."""
    num_all = len(features)
    step = max(1, budget // (8 * num_all))
    buffer = torch.empty(min(step, num_all), num_all, dtype=features.dtype)
    neighbours = torch.empty(num_all, k, dtype=torch.int64)
    column_max = torch.full((num_all,), -float("inf"), dtype=features.dtype)
    for start in range(0, num_all, step):
        block = distance(features[start : start + step], out=buffer[: min(step, num_all - start)])
        torch.maximum(column_max, block.amax(dim=0), out=column_max)
        values, indices = torch.topk(block, k, dim=1, largest=False, sorted=True)
        # Equal distances in index order, as far as topk kept them.
        order = torch.sort(indices, dim=1).indices
        values, indices = values.gather(1, order), indices.gather(1, order)
        order = torch.sort(values, dim=1, stable=True).indices
        neighbours[start : start + len(block)] = indices.gather(1, order)
    return neighbours, column_max


def _reciprocal(neighbours: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k + 1`` nearest neighbours j of each image i that have i among theirs too."""
    forward = neighbours[:, : k + 1]
    mask = torch.empty(forward.shape, dtype=torch.bool)
    step = max(1, SPARSE_BATCH // (k + 1) ** 2)
    for start in range(0, len(forward), step):
        rows = torch.arange(start, min(start + step, len(forward)))
        mask[rows] = (forward[forward[rows]] == rows[:, None, None]).any(dim=2)
    return mask


def _encoding(distance: PairwiseDistance, neighbours: torch.Tensor, row_max: torch.Tensor, k1: int) -> dict:
    """The sparse k-reciprocal encoding V (Eq. 9–10) as CSR: ``{"crow", "col", "val"}``."""
    num_all = len(neighbours)
    half = int(round(k1 / 2))  # the authors' np.around: halves to even
    forward = neighbours[:, : k1 + 1]
    recip = _reciprocal(neighbours, k1)
    half_forward = neighbours[:, : half + 1]
    half_sets = torch.where(_reciprocal(neighbours, half), half_forward, -1)
    half_sizes = (half_sets >= 0).sum(dim=1)
    sets = torch.where(recip, forward, -1)  # R(i, k1), -1 where absent
    rows_out, cols_out = [], []
    step = max(1, SPARSE_BATCH // ((k1 + 1) ** 2 * (half + 1)))
    for start in range(0, num_all, step):
        rows = torch.arange(start, min(start + step, num_all))
        own = sets[rows]  # n × (k1+1)
        candidates = own.clamp(min=0)
        cand_sets = half_sets[candidates]  # n × (k1+1) × (half+1)
        shared = ((cand_sets[..., None] == own[:, None, None, :]) & (cand_sets[..., None] >= 0)).any(dim=3).sum(dim=2)
        accept = (own >= 0) & (shared > 2 / 3 * half_sizes[candidates])
        expanded = torch.where(accept[..., None], cand_sets, -1).flatten(1)
        members = torch.cat([own, expanded], dim=1)
        present = members >= 0
        row_ids = rows[:, None].expand_as(members)[present]
        keys = torch.unique(row_ids * num_all + members[present])  # sorted: by row, then column
        rows_out.append(keys // num_all)
        cols_out.append(keys % num_all)
    row, col = torch.cat(rows_out), torch.cat(cols_out)
    weight = torch.empty(len(row), dtype=row_max.dtype)
    for start in range(0, len(row), SPARSE_BATCH // 64):
        part = slice(start, start + SPARSE_BATCH // 64)
        weight[part] = torch.exp(-distance.between(col[part], row[part]) / row_max[row[part]])
    row_sum = torch.zeros(num_all, dtype=weight.dtype).index_add_(0, row, weight)
    value = (weight / row_sum[row]).to(torch.float32)
    return _csr(row, col, value, num_all)


def _csr(row: torch.Tensor, col: torch.Tensor, value: torch.Tensor, num_rows: int) -> dict:
    """CSR arrays of entries already sorted by row then column."""
    crow = torch.zeros(num_rows + 1, dtype=torch.int64)
    crow[1:] = torch.bincount(row, minlength=num_rows).cumsum(0)
    return {"crow": crow, "col": col, "val": value}


def _rows_of(csr: dict, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The entries of the given CSR rows: (position in ``rows``, column, value)."""
    begin, length = csr["crow"][rows], csr["crow"][rows + 1] - csr["crow"][rows]
    owner = torch.repeat_interleave(torch.arange(len(rows)), length)
    offset = torch.arange(len(owner)) - torch.repeat_interleave(length.cumsum(0) - length, length)
    entry = begin[owner] + offset
    return owner, csr["col"][entry], csr["val"][entry]


def _query_expansion(encoding: dict, nearest: torch.Tensor) -> dict:
    """Local query expansion (Eq. 11): row i of V becomes the mean of the rows of its k2 nearest."""
    num_all, k2 = nearest.shape
    nnz_per_row = (encoding["crow"][1:] - encoding["crow"][:-1]).max().item()
    step = max(1, SPARSE_BATCH // max(1, k2 * nnz_per_row))
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, num_all, step):
        rows = torch.arange(start, min(start + step, num_all))
        owner, col, val = _rows_of(encoding, nearest[rows].flatten())
        row = rows[owner // k2]
        keys, inverse = torch.unique(row * num_all + col, return_inverse=True)
        total = torch.zeros(len(keys), dtype=val.dtype).index_add_(0, inverse, val)
        rows_out.append(keys // num_all)
        cols_out.append(keys % num_all)
        vals_out.append(total / k2)
    return _csr(torch.cat(rows_out), torch.cat(cols_out), torch.cat(vals_out), num_all)


def _inverted_index(encoding: dict, num_query: int) -> dict:
    """For each column l of V, its gallery rows (numbered from 0) and values: V's gallery part as CSC."""
    num_all = len(encoding["crow"]) - 1
    start = int(encoding["crow"][num_query])
    col, val = encoding["col"][start:], encoding["val"][start:]
    row = torch.repeat_interleave(
        torch.arange(num_all - num_query), encoding["crow"][num_query + 1 :] - encoding["crow"][num_query:-1]
    )
    order = torch.sort(col, stable=True).indices
    return _csr(col[order], row[order], val[order], num_all)


def _min_overlap(encoding: dict, inverted: dict, start: int, stop: int, num_gallery: int) -> torch.Tensor:
    """``Σ_l min(V[q, l], V[g, l])`` for queries ``start:stop`` and every gallery item (dense)."""
    overlap = torch.zeros(stop - start, num_gallery, dtype=torch.float32)
    owner, col, val = _rows_of(encoding, torch.arange(start, stop))
    pairs_upto = (inverted["crow"][col + 1] - inverted["crow"][col]).cumsum(0)
    first = 0
    while first < len(col):  # batches of query entries expanding to at most SPARSE_BATCH pairs
        limit = (int(pairs_upto[first - 1]) if first else 0) + SPARSE_BATCH
        last = max(first + 1, int(torch.searchsorted(pairs_upto, torch.tensor([limit]), right=True)))
        part = slice(first, last)
        entry, g_row, g_val = _rows_of(inverted, col[part])
        q_row, q_val = owner[part][entry], val[part][entry]
        overlap.index_put_((q_row, g_row), torch.minimum(q_val, g_val), accumulate=True)
        first = last
    return overlap
