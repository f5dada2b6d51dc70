"""The k nearest gallery features of each query, in bounded memory: chunks of the gallery with a
running top-k.

Ranking follows ``dcal eval`` (paper §4.2): features are L2-normalised and compared by Euclidean
distance, ``d(q, g) = sqrt(max(0, 2 - 2 q·g))`` for unit vectors.  The gallery arrives as an
iterable of ``(n_i, d)`` chunks (a :class:`~dcal.export.npz_array.NpzArray` streams them from a
``.npz`` file); each chunk's ``k`` nearest candidates are merged with the best ``k`` so far with
:func:`torch.topk`.  Memory is ``O(queries x (chunk_rows + k))`` for the distances plus one chunk of
features, whatever the gallery's size — a million-image gallery never needs its full distance matrix.

The result is ordered by distance, then by gallery index.  Exactly equal distances (duplicate
images) straddling the k-th place inside one chunk may keep a different one of the duplicates than a
stable sort of the full matrix would; the distances are the same.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CHUNK_ROWS = 16384


def unit_rows(features) -> torch.Tensor:
    """``features`` (array or tensor, (n, d)) as float32 rows of unit length."""
    tensor = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    return F.normalize(tensor.float(), dim=1)


def chunk_distances(query: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
    """(nq, n) Euclidean distances between unit rows of ``query`` and of ``chunk``."""
    return (2.0 - 2.0 * query @ chunk.T).clamp_min_(0.0).sqrt_()


def nearest(query, gallery_chunks: Iterable, k: int, *, query_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery rows of each query row: ``(distances, indices)``, each (nq, k'),
    nearest first, where ``k' = min(k, gallery size)``.

    ``query``: (nq, d) features; ``gallery_chunks``: the gallery's (n_i, d) feature chunks in order
    (arrays or tensors).  Both are L2-normalised here.  Queries are processed ``query_rows`` at a
    time, so the distance block is at most ``query_rows x chunk rows``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    query = unit_rows(query)
    nq = query.shape[0]
    best_d = torch.empty(nq, 0)
    best_i = torch.empty(nq, 0, dtype=torch.long)
    offset = 0
    for chunk in gallery_chunks:
        chunk = unit_rows(chunk)
        if chunk.shape[1] != query.shape[1]:
            raise ValueError(f"gallery features have dimension {chunk.shape[1]}, queries {query.shape[1]}")
        parts_d, parts_i = [], []
        for start in range(0, nq, query_rows):
            block = chunk_distances(query[start : start + query_rows], chunk)
            kk = min(k, block.shape[1])
            d, i = torch.topk(block, kk, dim=1, largest=False, sorted=False)
            parts_d.append(d)
            parts_i.append(i + offset)
        offset += chunk.shape[0]
        best_d, best_i = _merge(torch.cat([best_d, torch.cat(parts_d)], 1), torch.cat([best_i, torch.cat(parts_i)], 1), k)
    order = _stable_order(best_d, best_i)
    return torch.gather(best_d, 1, order).numpy(), torch.gather(best_i, 1, order).numpy()


def _merge(distances: torch.Tensor, indices: torch.Tensor, k: int):
    """The best ``k`` of the candidate columns (ties towards the lower index)."""
    if distances.shape[1] <= k:
        return distances, indices
    order = _stable_order(distances, indices)[:, :k]
    return torch.gather(distances, 1, order), torch.gather(indices, 1, order)


def _stable_order(distances: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Column order by distance, then by gallery index."""
    by_index = indices.argsort(dim=1)
    by_distance = torch.gather(distances, 1, by_index).argsort(dim=1, stable=True)
    return torch.gather(by_index, 1, by_distance)


def nearest_dense(query, gallery, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the full (nq, ng) distance matrix and a stable argsort of each row."""
    query, gallery = unit_rows(query), unit_rows(gallery)
    distances = chunk_distances(query, gallery)
    order = distances.argsort(dim=1, stable=True)[:, :k]
    return torch.gather(distances, 1, order).numpy(), order.numpy()
