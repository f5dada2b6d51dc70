"""Re-ID ranking metrics — CMC, mAP and mINP — under the Market-1501 protocol, in bounded memory.

The protocol is the one torchreid, fast-reid and TransReID implement (``eval_market1501``):
for each query, gallery items with the query's identity *and* camera are dropped; a query left
without a true match (same identity, other camera) is skipped; AP is taken over the whole
remaining ranking; the CMC curve is truncated at ``max_rank``; mAP, mINP and CMC are means over
the valid queries. mINP is Ye et al.'s (Deep Learning for Person Re-identification: A Survey and
Outlook, TPAMI 2021): a query's INP is ``#true matches / (rank of the hardest true match)``. Ties
in distance are broken by gallery index (as a stable ``argsort`` does), so results are
deterministic. Where ``max_rank`` exceeds what a query can rank, its CMC stays at 1 (torchreid
would instead shorten the curve to the gallery size).

The ranking itself is :class:`dcal.evaluation.ranking.RankingAccumulator`, which never sorts the
gallery and holds one chunk of queries at a time; :func:`reid_metrics_from_distances` evaluates a
given distance matrix, or a stream of query-row chunks of one (e.g. from
:func:`dcal.evaluation.re_ranking_chunks`), with the same code.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from dcal.errors import EvaluationError
from dcal.evaluation.distances import METRICS, PairwiseDistance
from dcal.evaluation.metric_inputs import as_features, as_tensor, check_features, check_lengths, memory_budget, resolve_chunk_size
from dcal.evaluation.ranking import RankingAccumulator


def reid_metrics(
    qf, gf, q_pids, g_pids, q_camids, g_camids, *, max_rank: int = 50, metric: str = "euclidean", chunk_size=None,
    device=None,
) -> dict:
    """CMC, mAP and mINP of ranking the gallery for every query (Market-1501 protocol).

    ``qf`` (Q × D) and ``gf`` (G × D) are features (torch tensors or numpy arrays); ``metric`` is
    ``"euclidean"`` (squared Euclidean distance of the features as given) or ``"cosine"``
    (1 − cosine similarity). Queries are evaluated ``chunk_size`` at a time — by default as many
    as fit :func:`memory_budget` — so memory is the features plus one chunk, whatever Q.
    ``device`` (default: the CPU) is where distances and ranking are computed, e.g. the model's
    CUDA device; the numbers are those of the CPU for the same distances.

    Returns ``{"mAP": float, "mINP": float, "cmc": ndarray of length max_rank,
    "num_valid_queries": int}``; ``cmc[k]`` is the share of valid queries whose first true match
    is within the top ``k + 1``.
    """
    if metric not in METRICS:
        raise EvaluationError(f"metric must be one of {METRICS}, got {metric!r}")
    qf, gf = as_features("qf", qf), as_features("gf", gf)
    check_lengths(qf=len(qf), q_pids=len(q_pids), q_camids=len(q_camids))
    check_lengths(gf=len(gf), g_pids=len(g_pids), g_camids=len(g_camids))
    check_features(qf, gf)
    accumulator = RankingAccumulator(q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, device=device)
    qf, gf = qf.to(accumulator.device), gf.to(accumulator.device)
    distance = PairwiseDistance(gf, metric, rank_only=True)
    step = resolve_chunk_size(chunk_size, len(gf), budget=memory_budget(accumulator.device))
    buffer = torch.empty(min(step, len(qf)), len(gf), dtype=distance.gallery.dtype, device=accumulator.device)
    for start in range(0, len(qf), step):
        queries = qf[start : start + step]
        accumulator.add(start, distance(queries, out=buffer[: len(queries)]))
    return accumulator.result()


def reid_metrics_from_distances(
    distances, q_pids, g_pids, q_camids, g_camids, *, max_rank: int = 50, chunk_size=None, device=None
) -> dict:
    """The metrics of :func:`reid_metrics` for given distances (smaller = more similar).

    ``distances`` is either a whole (Q × G) matrix (torch tensor or numpy array), evaluated
    ``chunk_size`` rows at a time, or an iterable of row chunks of one in query order — each a
    (rows × G) tensor or array, e.g. what :func:`dcal.evaluation.re_ranking_chunks` yields — so a
    matrix that would not fit in memory can be evaluated as it is produced.  ``device`` (default:
    the CPU) is where the ranking is computed; chunks are moved there as they come.
    """
    accumulator = RankingAccumulator(q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, device=device)
    if isinstance(distances, (torch.Tensor, np.ndarray)):
        matrix = as_tensor("distances", distances, 2, distances.device if isinstance(distances, torch.Tensor) else None)
        check_lengths(**{"distances rows": len(matrix), "q_pids": len(accumulator.q_pids)})
        step = resolve_chunk_size(chunk_size, matrix.shape[1], budget=memory_budget(accumulator.device))
        chunks: Iterable = (matrix[start : start + step] for start in range(0, len(matrix), step))
    else:
        chunks = distances
    start = 0
    for chunk in chunks:
        chunk = as_tensor(f"distance chunk at row {start}", chunk, 2, accumulator.device)
        accumulator.add(start, chunk)
        start += len(chunk)
    return accumulator.result()
