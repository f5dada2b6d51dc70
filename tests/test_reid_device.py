"""Re-ID metrics and re-ranking on a given device: the numbers of the default CPU path, chunks sized
to the device's free memory on CUDA (mem_get_info), distance chunks moved to the ranking's device."""

import numpy as np
import pytest
import torch

from dcal.evaluation import re_ranking, re_ranking_chunks, reid_metrics, reid_metrics_from_distances
from dcal.evaluation.metric_inputs import MEMORY_BUDGET, memory_budget, resolve_chunk_size
from test_reid_metrics import assert_same, random_problem


@pytest.mark.parametrize("metric, chunk_size", [("euclidean", None), ("cosine", 7)])
def test_metrics_on_a_given_device_equal_the_default(metric, chunk_size):
    qf, gf, *labels = random_problem(np.random.default_rng(5), 41, 230, 15, 3, 8, quantize=True)
    expected = reid_metrics(qf, gf, *labels, metric=metric)
    assert_same(reid_metrics(torch.from_numpy(qf), gf, *labels, metric=metric, device="cpu", chunk_size=chunk_size),
                expected)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):  # 1: the single block of rows that non-CPU devices rank; 2: two blocks in threads
            torch.set_num_threads(n)
            assert_same(reid_metrics(qf, gf, *labels, metric=metric, device=torch.device("cpu")), expected)
    finally:
        torch.set_num_threads(threads)


def test_re_ranking_on_a_given_device_equals_the_default():
    rng = np.random.default_rng(3)
    qf, gf, *labels = random_problem(rng, 20, 70, 8, 3, 6)
    expected = re_ranking(qf, gf, k1=6, k2=3)
    np.testing.assert_array_equal(re_ranking(qf, gf, k1=6, k2=3, device="cpu"), expected)
    chunks = re_ranking_chunks(qf, gf, k1=6, k2=3, chunk_size=6, device="cpu")
    assert_same(reid_metrics_from_distances(chunks, *labels, device="cpu"),
                reid_metrics_from_distances(expected, *labels))


def test_cuda_chunks_follow_the_free_memory(monkeypatch):
    free = {"bytes": 30 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 * 2**30))
    assert memory_budget("cuda") == 10 * 2**30
    assert memory_budget("cpu") == memory_budget(None) == MEMORY_BUDGET
    assert resolve_chunk_size(None, 82161, budget=memory_budget("cuda")) == 10 * 2**30 // (40 * 82161)
    free["bytes"] = 2**20  # almost nothing free: a small floor, still at least one query per chunk
    assert memory_budget("cuda") == 64 * 2**20
    assert resolve_chunk_size(None, 10**9, budget=memory_budget("cuda")) == 1
