"""Re-ID evaluation at Market-1501 and MSMT17 size: time, peak memory, and the dense way side by side.

    python benchmarks/reid_eval.py [--sizes market msmt17] [--rerank-sizes market] [--reps 2]

Prints one JSON document. Every measurement runs in a fresh subprocess; peak memory is that
process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which includes
the Python interpreter, torch, and the features themselves (``rss_before_mb`` is the resident size
just before the measured call). Features are random, dimension 1,536: an identity centre plus
noise (``--noise``), with identities and cameras laid out like the real test splits.

At Market-1501 size the same features are also evaluated the dense way the Re-ID toolkits do it
(full distance matrix, stable ``argsort``, per-query loop of torchreid's ``eval_market1501``,
NumPy), and the distance matrix alone is timed; ``reid_metrics`` and the distances alone are
timed alternately in one process (``--reps`` times each; best of each reported) so that their ratio
is measured under the same load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

DIM = 1536
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


def worker(task: str, size: str, noise: float, reps: int) -> dict:
    """One measurement, in this (fresh) process."""
    from dcal.evaluation import re_ranking_chunks, reid_metrics, reid_metrics_from_distances
    from dcal.evaluation.distances import PairwiseDistance

    qf, gf, q_pids, g_pids, q_camids, g_camids = make_problem(size, noise)
    labels = (q_pids, g_pids, q_camids, g_camids)
    before = rss_mb()
    out: dict = {"rss_before_mb": round(before, 1)}
    if task == "reid_metrics":
        start = time.perf_counter()
        metrics = reid_metrics(qf, gf, *labels)
        out["seconds"] = time.perf_counter() - start
        out["metrics"] = summary(metrics)
    elif task == "ratio":  # reid_metrics and the distance matrix alone, alternately
        ours, alone = [], []
        for _ in range(reps):
            start = time.perf_counter()
            distmat = PairwiseDistance(gf)(qf)
            alone.append(time.perf_counter() - start)
            del distmat
            start = time.perf_counter()
            reid_metrics(qf, gf, *labels)
            ours.append(time.perf_counter() - start)
        out.update(reid_metrics_seconds=ours, distances_alone_seconds=alone)
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
        ours = run("reid_metrics", size, args.noise, args.reps)
        entry["reid_metrics"] = {k: ours[k] for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
        entry["metrics"] = {k: ours["metrics"][k] for k in ("mAP", "mINP", "rank1")}
        if size == "market":
            dense = run("dense", size, args.noise, args.reps)
            ratio = run("ratio", size, args.noise, args.reps)
            best_ours, best_alone = min(ratio["reid_metrics_seconds"]), min(ratio["distances_alone_seconds"])
            entry["dense_numpy"] = {k: dense[k] for k in ("seconds", "distance_seconds", "peak_rss_mb")}
            entry["side_by_side"] = {
                "reid_metrics_seconds": ratio["reid_metrics_seconds"],
                "distances_alone_seconds": ratio["distances_alone_seconds"],
                "reid_metrics_over_distances_alone": best_ours / best_alone,
                "dense_over_reid_metrics": dense["seconds"] / best_ours,
            }
            entry["identical_to_dense"] = {
                "cmc_equal": ours["metrics"]["cmc"] == dense["metrics"]["cmc"],
                "mAP_abs_diff": abs(ours["metrics"]["mAP"] - dense["metrics"]["mAP"]),
                "mINP_abs_diff": abs(ours["metrics"]["mINP"] - dense["metrics"]["mINP"]),
            }
        if size in args.rerank_sizes:
            rerank = run("re_ranking", size, args.noise, args.reps)
            entry["re_ranking"] = {
                "seconds": rerank["seconds"],
                "peak_rss_mb": rerank["peak_rss_mb"],
                "metrics": {k: rerank["metrics"][k] for k in ("mAP", "mINP", "rank1")},
            }
        report[size] = entry
        print(json.dumps({size: entry}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
