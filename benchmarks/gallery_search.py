"""Time and peak memory of a gallery search: chunked running top-k against a dense reference.

``dcal search`` ranks a gallery by streaming its features from the ``.npz`` file in chunks and
keeping a running top-k (:func:`dcal.evaluation.nearest.nearest`).  The reference loads every
feature, computes the full (queries x gallery) distance matrix and argsorts each row
(:func:`dcal.evaluation.nearest.nearest_dense`).  Both run on the same random unit features written
to a ``.npz`` as ``dcal extract`` writes them; each runs in its own process, whose peak resident
size (``VmHWM``, reset just before the search) over its resident size at that moment is reported.
The rankings are asserted equal, and each query's nearest row to be the one it was drawn near.
Prints one JSON object.

    python benchmarks/gallery_search.py [--queries 100] [--gallery 100000] [--dims 768 1536]
    python benchmarks/gallery_search.py --gallery 1000000 --dims 1536 --no-dense
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident since the last reset) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Start the peak resident size (``VmHWM``) afresh from the present size (Linux ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def worker(method: str, gallery: str, queries: str, out: str, k: int, chunk_rows: int, threads: int) -> None:
    """Run one search in this process and write its result and measurements next to ``out``."""
    import torch

    from dcal.evaluation.nearest import nearest, nearest_dense
    from dcal.export.npz_array import NpzArray

    torch.set_num_threads(threads)
    query = np.load(queries)
    tiny = np.ones((k, query.shape[1]), np.float32)  # torch's lazy initialisation, not the search, on a tiny gallery
    nearest(query, [tiny], k)
    nearest_dense(query, tiny, k)
    before = _status_bytes("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    if method == "chunked":
        distances, indices = nearest(query, NpzArray(gallery, "features").chunks(chunk_rows), k)
    else:
        with np.load(gallery) as data:
            features = data["features"]
        distances, indices = nearest_dense(query, features, k)
    seconds = time.perf_counter() - started
    peak = _status_bytes("VmHWM")
    np.save(out + ".indices.npy", indices)
    np.save(out + ".distances.npy", distances)
    Path(out + ".json").write_text(json.dumps({"seconds": seconds, "peak_rss_over_start_mb": max(0, peak - before) / 2**20}))


def measure(method: str, gallery: Path, queries: Path, k: int, chunk_rows: int, threads: int, tmp: Path) -> dict:
    out = str(tmp / method)
    subprocess.run([sys.executable, __file__, "--worker", method, str(gallery), str(queries), out, str(k),
                    str(chunk_rows), str(threads)], check=True)
    result = json.loads(Path(out + ".json").read_text())
    result["indices"], result["distances"] = np.load(out + ".indices.npy"), np.load(out + ".distances.npy")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[768, 1536])
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=None, help="default: dcal's DEFAULT_CHUNK_ROWS")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each search process")
    parser.add_argument("--no-dense", action="store_true",
                        help="run only the chunked search (a gallery too large for the dense reference)")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, gallery, queries, out, k, chunk_rows, threads = args.worker
        worker(method, gallery, queries, out, int(k), int(chunk_rows), int(threads))
        return

    from dcal.evaluation.nearest import DEFAULT_CHUNK_ROWS
    from dcal.export.npz_array import spool_rows, write_npz

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for dim in args.dims:
            # The gallery is written in blocks (as a dcal search cache is), so even a million rows need
            # no more memory here than one block; queries lie near some gallery rows, so their top-k
            # are well separated from the rest.
            picks = np.sort(rng.choice(args.gallery, args.queries, replace=False))
            queries = np.zeros((args.queries, dim), np.float32)

            def blocks(rows=65536):
                for start in range(0, args.gallery, rows):
                    block = rng.standard_normal((min(rows, args.gallery - start), dim), dtype=np.float32)
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    inside = (picks >= start) & (picks < start + len(block))
                    queries[inside] = block[picks[inside] - start]
                    yield block

            with spool_rows(blocks(), dir=tmp) as spooled:
                write_npz(tmp / "gallery.npz", {}, {"features": spooled})
            queries += 0.5 / np.sqrt(dim) * rng.standard_normal(queries.shape, dtype=np.float32)
            np.save(tmp / "queries.npy", queries)
            chunked = measure("chunked", tmp / "gallery.npz", tmp / "queries.npy", args.topk, chunk_rows, args.threads, tmp)
            assert (chunked["indices"][:, 0] == picks).all()
            result = {"dim": dim, "gallery_mb": round(args.gallery * dim * 4 / 2**20, 1),
                      "chunked": {"seconds": round(chunked["seconds"], 3),
                                  "peak_rss_over_start_mb": round(chunked["peak_rss_over_start_mb"], 1)}}
            if not args.no_dense:
                dense = measure("dense", tmp / "gallery.npz", tmp / "queries.npy", args.topk, chunk_rows, args.threads, tmp)
                np.testing.assert_array_equal(chunked["indices"], dense["indices"])
                np.testing.assert_allclose(chunked["distances"], dense["distances"], atol=1e-5)
                result["dense"] = {"seconds": round(dense["seconds"], 3),
                                   "peak_rss_over_start_mb": round(dense["peak_rss_over_start_mb"], 1)}
                result["same_ranking"] = True
            results.append(result)
    print(json.dumps({
        "queries": args.queries, "gallery": args.gallery, "topk": args.topk, "chunk_rows": chunk_rows,
        "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "note": "seconds include reading the gallery's features from the .npz file; peak memory is the "
                "search process's peak resident size (VmHWM, reset before the search) over its size then",
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
