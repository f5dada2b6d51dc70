"""VehicleID's evaluation protocol (Liu et al., "Deep Relative Distance Learning", CVPR 2016).

A test list (800, 1,600 or 2,400 vehicles) has no query / gallery split and no camera ids.  Each of
:data:`~dcal.data.gallery_draws.NUM_DRAWS` gallery draws (:mod:`dcal.data.gallery_draws`: one
image per vehicle, chosen uniformly at random, the same draws in every run) is scored with
:func:`dcal.evaluation.reid_metrics`, leaving out only the query image itself
(:mod:`dcal.evaluation.camera_filter`), and the metrics are the mean and the standard deviation
over the draws.  With one gallery image per vehicle, each query has exactly one true match, so its
AP (and INP) is 1 / (rank of that match).
"""

from __future__ import annotations

import numpy as np
import torch

from dcal.data.gallery_draws import NUM_DRAWS, SEED, gallery_draws
from dcal.evaluation.camera_filter import image_groups
from dcal.evaluation.re_ranking import re_ranking_chunks
from dcal.errors import EvaluationError
from dcal.evaluation.reid_metrics import reid_metrics, reid_metrics_from_distances


def vehicleid_metrics(features, pids, paths=None, *, num_draws: int = NUM_DRAWS, seed: int = SEED,
                      metric: str = "euclidean", re_ranking: bool = False, max_rank: int = 50, device=None) -> dict:
    """mAP, mINP and CMC of the VehicleID protocol on the features of one test list.

    ``features`` (N × D) and ``pids`` (N,) cover every image of the list; ``paths`` (N,), if given,
    lets an image listed twice be left out of its own ranking.  ``re_ranking`` applies k-reciprocal
    re-ranking (:func:`dcal.evaluation.re_ranking_chunks`, Euclidean, as ``dcal eval``) within each
    draw; ``device`` is where distances and rankings are computed (default: the CPU).

    Returns ``{"mAP", "mINP": mean over draws, "mAP_std", "mINP_std": standard deviation (ddof 0),
    "cmc", "cmc_std": arrays of length max_rank, "num_draws", "draws": the per-draw results of
    reid_metrics}``.
    """
    features = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    pids = np.asarray(pids)
    if len(features) != len(pids):
        raise EvaluationError(f"lengths do not match: features has {len(features)}, pids has {len(pids)}")
    paths = np.asarray(paths if paths is not None else np.arange(len(pids)).astype(str))
    results = []
    for gallery in gallery_draws(pids, num_draws, seed):
        is_query = np.ones(len(pids), dtype=bool)
        is_query[gallery] = False
        query = np.flatnonzero(is_query)
        if len(query) == 0:
            raise EvaluationError("every identity has a single image: a gallery draw leaves no queries")
        q_groups, g_groups = image_groups(paths[query], paths[gallery])
        qf, gf = features[query], features[gallery]
        if re_ranking:
            result = reid_metrics_from_distances(re_ranking_chunks(qf, gf, device=device), pids[query],
                                                 pids[gallery], q_groups, g_groups, max_rank=max_rank, device=device)
        else:
            result = reid_metrics(qf, gf, pids[query], pids[gallery], q_groups, g_groups, metric=metric,
                                  max_rank=max_rank, device=device)
        results.append(result)
    summary = {"num_draws": len(results), "draws": results}
    for key in ("mAP", "mINP", "cmc"):
        values = np.array([r[key] for r in results], dtype=np.float64)
        summary[key] = values.mean(axis=0) if key == "cmc" else float(values.mean())
        summary[f"{key}_std"] = values.std(axis=0) if key == "cmc" else float(values.std())
    return summary
