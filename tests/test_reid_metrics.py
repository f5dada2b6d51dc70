"""reid_metrics against the straightforward per-query algorithm of torchreid / fast-reid / TransReID."""

import numpy as np
import pytest
import torch

from dcal.errors import DCALError
from dcal.evaluation import EvaluationError, reid_metrics, reid_metrics_from_distances


def eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """torchreid's eval_market1501 (with Ye et al.'s mINP), written plainly, with a stable argsort.

    One deliberate difference: where a query's ranking is shorter than ``max_rank`` its CMC is
    padded with its last value instead of shortening the whole curve.
    """
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(len(q_pids)):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][~remove]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_max_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        cmc = np.concatenate([cmc, np.full(max(0, max_rank - len(cmc)), cmc[-1])])
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(tmp_cmc)]) * raw_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    return {"mAP": np.mean(all_ap), "mINP": np.mean(all_inp), "cmc": np.asarray(all_cmc).sum(0) / len(all_cmc)}


def reference_distances(qf, gf, metric):
    qf, gf = torch.as_tensor(qf), torch.as_tensor(gf)
    if metric == "cosine":
        return (1 - torch.nn.functional.normalize(qf, dim=1) @ torch.nn.functional.normalize(gf, dim=1).T).numpy()
    return ((qf**2).sum(1, keepdim=True) + (gf**2).sum(1) - 2 * qf @ gf.T).numpy()


def random_problem(rng, num_query, num_gallery, num_ids, num_cams, dim, quantize=False):
    """Identities with a shared centre, distractor ids only in the gallery, some queries unmatched."""
    centres = rng.normal(size=(num_ids + 5, dim))
    q_pids = rng.integers(0, num_ids, num_query)
    g_pids = rng.integers(0, num_ids + 5, num_gallery)  # ids >= num_ids: distractors
    q_camids = rng.integers(0, num_cams, num_query)
    g_camids = rng.integers(0, num_cams, num_gallery)
    qf = centres[q_pids] + rng.normal(size=(num_query, dim)) * 1.5
    gf = centres[g_pids] + rng.normal(size=(num_gallery, dim)) * 1.5
    if quantize:  # few distinct values: many exactly equal distances
        qf, gf = np.round(qf), np.round(gf)
    return qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids, q_camids, g_camids


def assert_same(result, expected):
    assert result["mAP"] == pytest.approx(expected["mAP"], rel=1e-12, abs=0)
    assert result["mINP"] == pytest.approx(expected["mINP"], rel=1e-12, abs=0)
    np.testing.assert_allclose(result["cmc"], expected["cmc"], rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "shape, metric, quantize, chunk_size, max_rank",
    [
        ((30, 200, 12, 3, 8), "euclidean", False, None, 50),
        ((47, 311, 20, 4, 16), "euclidean", True, 5, 50),  # ties, several chunks
        ((25, 40, 6, 2, 3), "cosine", True, 7, 60),  # max_rank beyond the gallery
        ((64, 150, 30, 6, 32), "cosine", False, 1, 10),
        ((9, 12, 3, 2, 2), "euclidean", True, 4, 20),
    ],
)
def test_matches_per_query_reference(shape, metric, quantize, chunk_size, max_rank):
    rng = np.random.default_rng(sum(shape))
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_problem(rng, *shape, quantize=quantize)
    expected = eval_market1501(reference_distances(qf, gf, metric), q_pids, g_pids, q_camids, g_camids, max_rank)
    threads = torch.get_num_threads()
    result = reid_metrics(
        qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, metric=metric, chunk_size=chunk_size
    )
    assert result["cmc"].shape == (max_rank,)
    assert torch.get_num_threads() == threads  # ranking runs single-threaded per block, then restores
    assert_same(result, expected)
    # Torch inputs give the same numbers.
    as_torch = [torch.from_numpy(np.asarray(a)) for a in (qf, gf, q_pids, g_pids, q_camids, g_camids)]
    assert_same(reid_metrics(*as_torch, max_rank=max_rank, metric=metric, chunk_size=chunk_size), expected)


def test_exact_ties_are_broken_by_gallery_index():
    """Integer distances with many exact ties: the order must be the stable argsort's."""
    rng = np.random.default_rng(3)
    q_pids, g_pids = rng.integers(0, 5, 40), rng.integers(0, 7, 300)
    q_camids, g_camids = rng.integers(0, 3, 40), rng.integers(0, 3, 300)
    distmat = rng.integers(0, 4, (40, 300)).astype(np.float32)
    distmat[3, :] = -np.inf  # a whole row tied, at an infinite value
    distmat[5, ::2] = np.inf
    expected = eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, 50)
    for chunk_size in (None, 3):
        result = reid_metrics_from_distances(distmat, q_pids, g_pids, q_camids, g_camids, chunk_size=chunk_size)
        assert_same(result, expected)
    chunks = (torch.from_numpy(distmat[i : i + 7]) for i in range(0, 40, 7))
    assert_same(reid_metrics_from_distances(chunks, q_pids, g_pids, q_camids, g_camids), expected)


def test_worked_example():
    """One query, hand-computed: valid ranking [neg, match, same-cam (dropped), neg, match]."""
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids, g_camids = np.array([2, 1, 1, 3, 1]), np.array([0, 0, 1, 0, 0])
    result = reid_metrics_from_distances(distmat, np.array([1]), g_pids, np.array([1]), g_camids, max_rank=5)
    # Valid ranking: neg(0), match(1), neg(3), match(4) -> matches at ranks 2 and 4.
    assert result["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result["mINP"] == pytest.approx(2 / 4)
    np.testing.assert_array_equal(result["cmc"], [0, 1, 1, 1, 1])


def test_bad_inputs_say_what_is_wrong():
    rng = np.random.default_rng(0)
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_problem(rng, 10, 30, 4, 2, 8)
    with pytest.raises(EvaluationError, match=r"q_pids has 9"):
        reid_metrics(qf, gf, q_pids[:9], g_pids, q_camids, g_camids)
    with pytest.raises(EvaluationError, match=r"gf has 30, g_pids has 30, g_camids has 29"):
        reid_metrics(qf, gf, q_pids, g_pids, q_camids, g_camids[:29])
    with pytest.raises(EvaluationError, match="gallery is empty"):
        reid_metrics(qf, gf[:0], q_pids, g_pids[:0], q_camids, g_camids[:0])
    with pytest.raises(EvaluationError, match="query set is empty"):
        reid_metrics(qf[:0], gf, q_pids[:0], g_pids, q_camids[:0], g_camids)
    with pytest.raises(EvaluationError, match="qf has 8, gf has 7"):
        reid_metrics(qf, gf[:, :7], q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(EvaluationError, match="no query has a true match"):
        reid_metrics(qf, gf, q_pids, g_pids + 100, q_camids, g_camids)
    with pytest.raises(EvaluationError, match="NaN"):
        reid_metrics_from_distances(np.full((10, 30), np.nan), q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(EvaluationError, match="metric"):
        reid_metrics(qf, gf, q_pids, g_pids, q_camids, g_camids, metric="manhattan")
    with pytest.raises(EvaluationError, match="7 of 10 queries"):
        reid_metrics_from_distances([np.zeros((7, 30))], q_pids, g_pids, q_camids, g_camids)
    assert issubclass(EvaluationError, DCALError)
