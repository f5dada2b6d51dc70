"""Re-ID evaluation at Market-1501 and MSMT17 size: time, peak memory, and the dense way side by side.

    python benchmarks/reid_eval.py [--sizes market msmt17] [--rerank-sizes market] [--reps 2]

Two rankings of ``reid_metrics`` are measured side by side: ``bins`` (its own: no sort, histogram
counts of the items ahead of each true match, a thread per block of rows) and ``sort`` (the plain
alternative, :class:`SortingAccumulator` below: per query chunk a stable ``torch.sort`` of the
distances, then the protocol).  Each runs in its own fresh process, alternating ``--reps`` times
with the distance computation alone (the same chunks ``reid_metrics`` computes), so each one's ratio
to the distances is measured under the same load; ``sort_identical_to_bins`` compares their numbers.

Prints one JSON document. Every measurement runs in a fresh subprocess; peak memory is that
process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which includes
the Python interpreter, torch, and the features themselves (``rss_before_mb`` is the resident size
just before the measured call). Features are random, dimension 1,536: an identity centre plus
noise (``--noise``), with identities and cameras laid out like the real test splits.

At Market-1501 size the same features are also evaluated the dense way the Re-ID toolkits do it
(full distance matrix, stable ``argsort``, per-query loop of torchreid's ``eval_market1501``,
NumPy).  Ratios use the best of the ``--reps`` times; ``load_average`` is the machine's 1-, 5- and
15-minute load when the report was written.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from dcal.errors import EvaluationError
from dcal.evaluation.ranking import RankingAccumulator

DIM = 1536


class SortingAccumulator(RankingAccumulator):
    """The plain alternative to ``reid_metrics``'s ranking: per query chunk, a stable ``torch.sort``
    of each query's distances, then the protocol on the sorted identities and cameras."""

    def add(self, start: int, distances: torch.Tensor) -> None:
        self.added[start : start + len(distances)] = True
        with self.device:
            self._rank(start, distances.to(self.device))

    def _rank(self, start: int, distances: torch.Tensor) -> None:
        num_rows = len(distances)
        nan = torch.isnan(distances).any(dim=1)
        if bool(nan.any()):
            shown = (torch.nonzero(nan)[:5, 0] + start).tolist()
            more = " …" if nan.sum() > 5 else ""
            raise EvaluationError(f"distances contain NaN (query rows {shown}{more}); are there NaN features?")
        order = torch.sort(distances, dim=1, stable=True).indices  # ties: the lower gallery index first
        same_id = self.g_pids[order] == self.q_pids[start : start + num_rows, None]
        same_camera = self.g_camids[order] == self.q_camids[start : start + num_rows, None]
        del order
        match = same_id & ~same_camera  # a true match: the query's identity seen by another camera
        rank = (~(same_id & same_camera)).cumsum(1, dtype=torch.int32)  # 1-based, same-camera items left out
        del same_id, same_camera
        num_matches = match.sum(1)
        width = int(num_matches.max())
        if width == 0:
            return  # no query of this chunk has a true match: all are skipped
        # The rank of each query's k-th true match, k = 1 … width (0 past its last match).
        match_row, match_col = match.nonzero(as_tuple=True)
        slot = torch.arange(len(match_row)) - torch.repeat_interleave(num_matches.cumsum(0) - num_matches, num_matches)
        match_rank = torch.zeros((num_rows, width), dtype=torch.int64)
        match_rank[match_row, slot] = rank[match_row, match_col].to(torch.int64)
        is_real = torch.arange(width) < num_matches[:, None]
        precision = (torch.arange(1, width + 1, dtype=torch.float64) / match_rank).where(is_real, 0.0)
        ap = precision.sum(1) / num_matches.clamp(min=1)
        hardest = match_rank.gather(1, (num_matches - 1).clamp(min=0)[:, None])[:, 0]
        inp = num_matches / hardest.to(torch.float64)
        chunk = slice(start, start + num_rows)
        self.ap[chunk] = ap.cpu().numpy()
        self.inp[chunk] = inp.cpu().numpy()
        self.first[chunk] = torch.where(num_matches > 0, match_rank[:, 0] - 1, -1).cpu().numpy()


# The rankings measured side by side: the accumulator class reid_metrics uses for each.
RANKINGS = {"bins": RankingAccumulator, "sort": SortingAccumulator}
# (queries, gallery, identities, cameras, gallery distractors with pid 0)
SIZES = {
    "market": (3368, 15913, 750, 6, 2798),
    "msmt17": (11659, 82161, 3060, 15, 0),
}


def make_problem(size, noise: float, seed: int = 0):
    """Features and labels shaped like the real test split (identity centre + noise); ``size`` is a
    name in :data:`SIZES` or such a tuple."""
    num_query, num_gallery, num_ids, num_cams, num_distractors = SIZES[size] if isinstance(size, str) else size
    rng = np.random.default_rng(seed)
    q_pids = np.concatenate([np.arange(1, num_ids + 1), rng.integers(1, num_ids + 1, num_query - num_ids)])
    g_pids = np.concatenate(
        [
            np.arange(1, num_ids + 1),
            rng.integers(1, num_ids + 1, num_gallery - num_ids - num_distractors),
            np.zeros(num_distractors, dtype=np.int64),
        ]
    )
    q_camids, g_camids = rng.integers(0, num_cams, num_query), rng.integers(0, num_cams, num_gallery)
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids + 1, DIM, generator=generator)

    def features(pids):
        out = torch.randn(len(pids), DIM, generator=generator).mul_(noise)
        for start in range(0, len(pids), 4096):  # in place, no second copy of the features
            out[start : start + 4096] += centres[torch.from_numpy(pids[start : start + 4096])]
        return out

    return features(q_pids), features(g_pids), q_pids, g_pids, q_camids, g_camids


def eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The toolkits' dense evaluation (torchreid's eval_market1501 + Ye et al.'s mINP), stable argsort."""
    num_q, num_g = distmat.shape
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(num_q):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_max_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum() / (np.arange(len(raw_cmc)) + 1.0) * raw_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    cmc = np.asarray(all_cmc).astype(np.float64).sum(0) / len(all_cmc)
    return {"mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "cmc": cmc}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(metrics: dict) -> dict:
    cmc = metrics["cmc"]
    return {"mAP": metrics["mAP"], "mINP": metrics["mINP"], "rank1": float(cmc[0]), "cmc": cmc.tolist()}


def distances_alone(qf, gf) -> None:
    """The distance computation of ``reid_metrics`` without the ranking: the same chunks, discarded."""
    from dcal.evaluation.distances import PairwiseDistance
    from dcal.evaluation.metric_inputs import resolve_chunk_size

    distance = PairwiseDistance(gf, "euclidean", rank_only=True)
    step = resolve_chunk_size(None, len(gf))
    buffer = torch.empty(min(step, len(qf)), len(gf), dtype=distance.gallery.dtype)
    for start in range(0, len(qf), step):
        queries = qf[start : start + step]
        distance(queries, out=buffer[: len(queries)])


def worker(task: str, size: str, noise: float, reps: int) -> dict:
    """One measurement, in this (fresh) process."""
    from dcal.evaluation import re_ranking_chunks, reid_metrics, reid_metrics_from_distances
    from dcal.evaluation.distances import PairwiseDistance

    qf, gf, q_pids, g_pids, q_camids, g_camids = make_problem(size, noise)
    labels = (q_pids, g_pids, q_camids, g_camids)
    before = rss_mb()
    out: dict = {"rss_before_mb": round(before, 1)}
    if task in RANKINGS:  # reid_metrics with this ranking and the distances alone, alternately
        module = sys.modules["dcal.evaluation.reid_metrics"]
        module.RankingAccumulator = RANKINGS[task]
        ours, alone = [], []
        for _ in range(reps):
            start = time.perf_counter()
            distances_alone(qf, gf)
            alone.append(time.perf_counter() - start)
            start = time.perf_counter()
            metrics = reid_metrics(qf, gf, *labels)
            ours.append(time.perf_counter() - start)
        out.update(seconds=ours, distances_alone_seconds=alone, metrics=summary(metrics))
    elif task == "dense":
        start = time.perf_counter()
        distmat = PairwiseDistance(gf)(qf).numpy()
        middle = time.perf_counter()
        metrics = eval_market1501(distmat, *labels)
        out.update(seconds=time.perf_counter() - start, distance_seconds=middle - start, metrics=summary(metrics))
    elif task == "re_ranking":
        start = time.perf_counter()
        metrics = reid_metrics_from_distances(re_ranking_chunks(qf, gf), *labels)
        out["seconds"] = time.perf_counter() - start
        out["metrics"] = summary(metrics)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def _same(metrics: dict, reference: dict) -> dict:
    return {
        "cmc_equal": metrics["cmc"] == reference["cmc"],
        "mAP_abs_diff": abs(metrics["mAP"] - reference["mAP"]),
        "mINP_abs_diff": abs(metrics["mINP"] - reference["mINP"]),
    }


def run(task: str, size: str, noise: float, reps: int) -> dict:
    command = [sys.executable, __file__, "--worker", task, "--sizes", size, "--noise", str(noise), "--reps", str(reps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["market", "msmt17"], choices=sorted(SIZES))
    parser.add_argument("--rerank-sizes", nargs="*", default=["market"], choices=sorted(SIZES))
    parser.add_argument("--noise", type=float, default=3.0, help="noise scale around each identity centre")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes[0], args.noise, args.reps)))
        return

    report: dict = {
        "feature_dim": DIM,
        "noise": args.noise,
        "torch_threads": torch.get_num_threads(),
        "memory": "peak RSS of a fresh subprocess per measurement (resource.getrusage ru_maxrss)",
    }
    for size in args.sizes:
        num_query, num_gallery, num_ids, num_cams, _ = SIZES[size]
        entry: dict = {"queries": num_query, "gallery": num_gallery, "identities": num_ids, "cameras": num_cams}
        features_mb = (num_query + num_gallery) * DIM * 4 / 2**20
        entry["features_mb"] = round(features_mb, 1)
        measured = {}
        for ranking in RANKINGS:
            measured[ranking] = run(ranking, size, args.noise, args.reps)
            best, alone = min(measured[ranking]["seconds"]), min(measured[ranking]["distances_alone_seconds"])
            entry[f"reid_metrics_{ranking}"] = {
                **{k: measured[ranking][k] for k in ("seconds", "distances_alone_seconds", "peak_rss_mb", "rss_before_mb")},
                "best_over_distances_alone": best / alone,
            }
            print(json.dumps({size: {ranking: entry[f"reid_metrics_{ranking}"]}}), file=sys.stderr, flush=True)
        bins, plain = measured["bins"], measured["sort"]
        entry["sort_over_bins"] = min(plain["seconds"]) / min(bins["seconds"])
        entry["metrics"] = {k: bins["metrics"][k] for k in ("mAP", "mINP", "rank1")}
        entry["sort_identical_to_bins"] = _same(plain["metrics"], bins["metrics"])
        if size == "market":
            dense = run("dense", size, args.noise, args.reps)
            entry["dense_numpy"] = {k: dense[k] for k in ("seconds", "distance_seconds", "peak_rss_mb")}
            for ranking in RANKINGS:
                entry[f"dense_over_{ranking}"] = dense["seconds"] / min(measured[ranking]["seconds"])
                entry[f"{ranking}_identical_to_dense"] = _same(measured[ranking]["metrics"], dense["metrics"])
        if size in args.rerank_sizes:
            rerank = run("re_ranking", size, args.noise, args.reps)
            entry["re_ranking"] = {
                "seconds": rerank["seconds"],
                "peak_rss_mb": rerank["peak_rss_mb"],
                "metrics": {k: rerank["metrics"][k] for k in ("mAP", "mINP", "rank1")},
            }
        report[size] = entry
        print(json.dumps({size: entry}), file=sys.stderr, flush=True)
    report["load_average"] = [round(load, 2) for load in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
