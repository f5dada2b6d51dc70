"""The ranking behind the Re-ID metrics (:mod:`dcal.evaluation.reid_metrics`), in bounded memory.

How it scales. The toolkits build the whole query × gallery distance matrix and ``argsort`` every
row (about 19 GB at MSMT17's 11,659 × 82,161). Here queries are processed in chunks and nothing is
sorted: every metric above is a function of the *positions of the true matches* in the ranking, and
the position of a true match is the number of valid items ahead of it. Per chunk of queries:

1. items farther than the query's hardest true match cannot be ahead of any true match; the
   others are gathered (one comparison and one ``nonzero`` over the chunk);
2. their distances are mapped to ``B`` bins by a monotone map (``(d − row min) · scale``,
   truncated) and counted per query and bin; all items of a lower bin than a true match are
   ahead of it (cumulative counts);
3. items that share a bin with a true match are compared with it exactly — distance, then
   gallery index (the order of a stable ``argsort``).

Every step is a torch operation over the chunk (all intra-op threads), so the cost is one distance
computation plus a few linear passes, never a sort of the gallery (``benchmarks/reid_eval.py``
measures it beside the plain way, a stable sort of every row, which costs about as much again as
the distances).  :func:`reid_metrics_from_distances` evaluates a given distance matrix, or a stream
of query-row chunks of one (e.g. from :func:`dcal.evaluation.re_ranking_chunks`), with the same code.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from dcal.errors import EvaluationError
from dcal.evaluation.metric_inputs import check_lengths, labels_of


class RankingAccumulator:
    """Collects per-query AP, INP and first-match rank from query chunks of a distance matrix.

    ``add(start, distances)`` takes the rows ``start : start + len(distances)`` of the
    (num_query × num_gallery) distance matrix; :meth:`result` returns the metrics once every
    query has been added.
    """

    def __init__(self, q_pids, g_pids, q_camids, g_camids, *, max_rank: int = 50, device=None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.q_pids, self.g_pids = labels_of("q_pids", q_pids).to(self.device), labels_of("g_pids", g_pids).to(self.device)
        self.q_camids = labels_of("q_camids", q_camids).to(self.device)
        self.g_camids = labels_of("g_camids", g_camids).to(self.device)
        check_lengths(q_pids=len(self.q_pids), q_camids=len(self.q_camids))
        check_lengths(g_pids=len(self.g_pids), g_camids=len(self.g_camids))
        if len(self.q_pids) == 0:
            raise EvaluationError("the query set is empty (q_pids has 0 entries)")
        if len(self.g_pids) == 0:
            raise EvaluationError("the gallery is empty (g_pids has 0 entries)")
        if not isinstance(max_rank, (int, np.integer)) or isinstance(max_rank, bool) or max_rank < 1:
            raise EvaluationError(f"max_rank must be a positive integer, got {max_rank!r}")
        self.max_rank = int(max_rank)
        self.num_gallery = len(self.g_pids)
        self.num_bins = max(16, self.num_gallery // 8)
        # The gallery grouped by identity (stable, so gallery order holds inside a group).
        self.sorted_g_pids, self.g_order = torch.sort(self.g_pids, stable=True)
        num_query = len(self.q_pids)
        self.ap = np.zeros(num_query)
        self.inp = np.zeros(num_query)
        self.first = np.full(num_query, -1, dtype=np.int64)  # 0-based position; -1 = no true match
        self.added = np.zeros(num_query, dtype=bool)
        # Chunk-sized work buffers, reused: fresh large tensors would cost a page fault per 4 kB.
        self.buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        size = int(np.prod(shape))
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype:
            buffer = self.buffers[name] = torch.empty(size, dtype=dtype, device=self.device)
        return buffer[:size].view(shape)

    def add(self, start: int, distances: torch.Tensor) -> None:
        """Evaluate the queries ``start : start + len(distances)`` given their distance rows."""
        num_rows, num_gallery = distances.shape
        if num_gallery != self.num_gallery:
            raise EvaluationError(
                f"distance rows {start}..{start + num_rows - 1} have {num_gallery} columns, "
                f"expected one per gallery item ({self.num_gallery})"
            )
        if start < 0 or start + num_rows > len(self.q_pids):
            raise EvaluationError(
                f"distance rows {start}..{start + num_rows - 1} exceed the {len(self.q_pids)} queries"
            )
        self.added[start : start + num_rows] = True
        if not distances.dtype.is_floating_point:
            distances = distances.to(torch.float64)
        distances = distances.to(self.device).contiguous()
        if self.device.type != "cpu":  # the whole chunk at once, every new tensor on the device
            with self.device:
                self._add_rows(0, start, distances)
            return
        # One block of rows per core, each ranked single-threaded: the passes below are many
        # short operations, and on a busy machine their thread barriers cost more than they save.
        intra_op_threads = torch.get_num_threads()
        threads = min(intra_op_threads, num_rows)
        if threads <= 1:
            self._add_rows(0, start, distances)
            return
        bounds = np.linspace(0, num_rows, threads + 1).astype(int)
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                blocks = [
                    pool.submit(self._add_rows, worker, start + lo, distances[lo:hi])
                    for worker, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
                ]
                for block in blocks:
                    block.result()
        finally:
            torch.set_num_threads(intra_op_threads)

    def _add_rows(self, worker: int, start: int, distances: torch.Tensor) -> None:
        num_rows, num_gallery = distances.shape
        rows = torch.arange(num_rows)
        q_pids = self.q_pids[start : start + num_rows]
        q_camids = self.q_camids[start : start + num_rows]

        # Gallery items of each query's identity: true matches, and same-camera items (dropped).
        group_start = torch.searchsorted(self.sorted_g_pids, q_pids, side="left")
        group_size = torch.searchsorted(self.sorted_g_pids, q_pids, side="right") - group_start
        same_row = torch.repeat_interleave(rows, group_size)
        within = torch.arange(len(same_row)) - torch.repeat_interleave(group_size.cumsum(0) - group_size, group_size)
        same_col = self.g_order[group_start[same_row] + within]
        is_match = self.g_camids[same_col] != q_camids[same_row]
        match_row, match_col = same_row[is_match], same_col[is_match]
        num_matches = torch.bincount(match_row, minlength=num_rows)
        width = int(num_matches.max())
        if width == 0:
            return  # no query of this chunk has a true match: all are skipped

        # True matches of each query, padded to `width` and sorted by (distance, gallery index).
        slot = torch.arange(len(match_row)) - torch.repeat_interleave(num_matches.cumsum(0) - num_matches, num_matches)
        match_dist = torch.full((num_rows, width), float("inf"), dtype=distances.dtype)
        match_dist[match_row, slot] = distances[match_row, match_col]
        match_idx = torch.full((num_rows, width), num_gallery, dtype=torch.int64)
        match_idx[match_row, slot] = match_col
        order = torch.sort(match_dist, dim=1, stable=True).indices
        match_dist, match_idx = match_dist.gather(1, order), match_idx.gather(1, order)
        is_real = torch.arange(width) < num_matches[:, None]
        real_row = rows[:, None].expand(-1, width)[is_real]
        real_k = torch.arange(width).expand(num_rows, -1)[is_real]
        hardest_dist = match_dist.where(is_real, -float("inf")).amax(dim=1)
        low = torch.amin(distances, dim=1)
        bad = torch.isnan(low) | torch.isnan(hardest_dist)
        if bool(bad.any()):
            shown = (torch.nonzero(bad)[:5, 0] + start).tolist()
            more = " …" if bad.sum() > 5 else ""
            raise EvaluationError(f"distances contain NaN (query rows {shown}{more}); are there NaN features?")

        # Only items not behind the query's hardest true match can be ahead of a true match.
        keep = self._buffer(f"keep{worker}", distances.shape, torch.bool)
        torch.le(distances, hardest_dist[:, None], out=keep)
        item = keep.view(-1).nonzero().squeeze(1)  # row * num_gallery + column
        item_dist = distances.view(-1)[item]
        binning = _Binning(low, hardest_dist, self.num_bins)
        item_row = item // num_gallery
        item_bin = binning(item_dist, item_row).add_(item_row.mul_(self.num_bins))  # flat (row, bin)
        del item_row
        # Per query, how many valid non-matching kept items fall in each bin: all kept items, less
        # the kept ones of the query's identity (true matches and same-camera items).
        counts = torch.bincount(item_bin, minlength=num_rows * self.num_bins)
        same_dist = distances[same_row, same_col]
        same_kept = same_dist <= hardest_dist[same_row]
        same_row_kept = same_row[same_kept]
        same_bin = binning(same_dist[same_kept], same_row_kept) + same_row_kept * self.num_bins
        counts.index_add_(0, same_bin, torch.full_like(same_bin, -1))
        counts_upto = counts.view(num_rows, self.num_bins).cumsum(1)

        # Items ahead of a true match: all in lower bins, plus those of its bin that compare lower.
        match_bin = torch.zeros((num_rows, width), dtype=torch.int64)
        match_bin[is_real] = binning(match_dist[is_real], real_row)
        ahead = counts_upto.gather(1, (match_bin - 1).clamp(min=0)).where(match_bin > 0, 0)
        # Bins holding true matches: (row, bin) groups of consecutive matches, in sorted order.
        groups, group_size = torch.unique_consecutive(real_row * self.num_bins + match_bin[is_real], return_counts=True)
        group_first_k = real_k[group_size.cumsum(0) - group_size]
        shares_bin = torch.zeros(num_rows * self.num_bins, dtype=torch.bool)
        shares_bin[groups] = True
        cand = shares_bin[item_bin].nonzero().squeeze(1)
        cand_row, cand_col = item[cand] // num_gallery, item[cand] % num_gallery
        negative = self.g_pids.index_select(0, cand_col) != q_pids.index_select(0, cand_row)
        cand, cand_row, cand_col = cand[negative], cand_row[negative], cand_col[negative]
        cand_dist = item_dist[cand]
        group = torch.searchsorted(groups, item_bin[cand])
        first_k, size = group_first_k.index_select(0, group), group_size.index_select(0, group)
        # A candidate is ahead of the matches of its bin that compare higher (distance, then index):
        # a suffix of the bin's matches, since they are sorted. Count the prefix that compares lower.
        lower = torch.zeros_like(cand_row)
        for j in range(int(size.max()) if len(size) else 0):
            k = (first_k + j).clamp(max=width - 1)
            m_dist, m_idx = match_dist[cand_row, k], match_idx[cand_row, k]
            lower += (j < size) & ((m_dist < cand_dist) | ((m_dist == cand_dist) & (m_idx < cand_col)))
        suffix = torch.zeros(num_rows, width + 1, dtype=torch.int64)
        suffix.index_put_((cand_row, first_k + lower), torch.tensor(1), accumulate=True)
        suffix.index_put_((cand_row, first_k + size), torch.tensor(-1), accumulate=True)
        ahead += suffix.cumsum(1)[:, :width]

        # Position (0-based) of the k-th true match among the valid items: ahead + k.
        position = ahead + torch.arange(width)
        valid = num_matches > 0
        precision = (torch.arange(1, width + 1, dtype=torch.float64) / (position + 1)).where(is_real, 0.0)
        ap = precision.sum(1) / num_matches.clamp(min=1)
        hardest = position.gather(1, (num_matches - 1).clamp(min=0)[:, None])[:, 0]
        inp = num_matches / (hardest.to(torch.float64) + 1)
        chunk = slice(start, start + num_rows)
        self.ap[chunk] = ap.cpu().numpy()
        self.inp[chunk] = inp.cpu().numpy()
        self.first[chunk] = torch.where(valid, position[:, 0], -1).cpu().numpy()

    def result(self) -> dict:
        """``{"mAP": float, "mINP": float, "cmc": ndarray(max_rank)}`` over the valid queries."""
        missing = np.flatnonzero(~self.added)
        if len(missing):
            given, total = len(self.added) - len(missing), len(self.added)
            raise EvaluationError(f"distances were given for {given} of {total} queries")
        valid = self.first >= 0
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise EvaluationError(
                "no query has a true match in the gallery (an item of the same identity from another camera)"
            )
        first = np.minimum(self.first[valid], self.max_rank)
        cmc = np.bincount(first, minlength=self.max_rank + 1)[: self.max_rank].cumsum() / num_valid
        return {
            "mAP": float(np.mean(self.ap[valid])),
            "mINP": float(np.mean(self.inp[valid])),
            "cmc": cmc,
            "num_valid_queries": num_valid,
        }


class _Binning:
    """A monotone (non-decreasing) map of each query's distances in [low, high] to bins 0 … B − 1.

    Applied elementwise with the same float operations wherever it is used, so that a lower bin
    always means a strictly smaller distance. Queries whose range is not finite get one bin.
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor, num_bins: int):
        self.finite = torch.isfinite(low) & torch.isfinite(high)
        span = high - low
        scale = torch.where(span > 0, (num_bins - 1) / span, torch.zeros_like(span))
        self.scale = torch.where(self.finite, scale, torch.zeros_like(scale))
        self.low = torch.where(self.finite, low, torch.zeros_like(low))
        self.all_finite = bool(self.finite.all())

    def __call__(self, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # index_select: far faster than advanced indexing for lookups in a small table.
        scaled = (values - self.low.index_select(0, rows)).mul_(self.scale.index_select(0, rows))
        if not self.all_finite:
            scaled.masked_fill_(~self.finite.index_select(0, rows), 0)
        return scaled.to(torch.int64)
