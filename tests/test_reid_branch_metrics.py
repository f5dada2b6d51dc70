"""Re-ID evaluation per branch: mAP and Rank-1 of the SA and GLCA features alone beside their
concatenation, each against the plain per-query reference computed from that feature alone."""

import numpy as np
import pytest
import torch

from dcal.config import load_config
from dcal.data.records import ReIDRecord
from dcal.engine.evaluator import evaluate
from test_reid_metrics import eval_market1501, random_problem
from test_reid_without_cameras import Features


def _records(pids, camids):
    return [ReIDRecord(path=f"{i}.jpg", pid=int(p), camid=int(c), original_pid=int(p)) for i, (p, c) in enumerate(zip(pids, camids))]


class _TwoBranches(torch.nn.Module):
    """Images that are their own features: the first half of the vector is SA's, the second GLCA's."""

    neck_feat = "before"

    def __init__(self, glca=True):
        super().__init__()
        self.glca = glca

    def forward_branches(self, x):
        half = x.shape[1] // 2
        out = {"sa": {"feat": x[:, :half]}}
        if self.glca:
            out["glca"] = {"feat": x[:, half:]}
        return out


def _reference(qf, gf, q, g):
    qf = torch.nn.functional.normalize(torch.as_tensor(qf), dim=1)
    gf = torch.nn.functional.normalize(torch.as_tensor(gf), dim=1)
    distances = torch.cdist(qf.double(), gf.double()).numpy() ** 2
    result = eval_market1501(distances, q[0], g[0], q[1], g[1], max_rank=50)
    return 100.0 * result["mAP"], 100.0 * result["cmc"][0]


def test_each_branch_is_scored_on_its_own_feature():
    rng = np.random.default_rng(0)
    sa_q, sa_g, q_pids, g_pids, q_cams, g_cams = random_problem(rng, 30, 120, 12, 3, 8)
    # GLCA's features: the same identities, but noisier, so the branches score differently
    glca_q = sa_q + rng.normal(size=sa_q.shape).astype(np.float32) * 2
    glca_g = sa_g + rng.normal(size=sa_g.shape).astype(np.float32) * 2
    query = Features(np.concatenate([sa_q, glca_q], 1), _records(q_pids, q_cams))
    gallery = Features(np.concatenate([sa_g, glca_g], 1), _records(g_pids, g_cams))
    config = load_config(None, ["task=reid", "eval.batch_size=7"])
    metrics = evaluate(_TwoBranches(), {"query": query, "gallery": gallery}, config)
    q, g = (q_pids, q_cams), (g_pids, g_cams)
    expected = {
        "": _reference(np.concatenate([sa_q, glca_q], 1), np.concatenate([sa_g, glca_g], 1), q, g),
        "_sa": _reference(sa_q, sa_g, q, g),
        "_glca": _reference(glca_q, glca_g, q, g),
    }
    for suffix, (mAP, rank1) in expected.items():
        assert metrics[f"mAP{suffix}"] == pytest.approx(mAP, abs=1e-6)
        assert metrics[f"rank1{suffix}"] == pytest.approx(rank1, abs=1e-6)
    assert metrics["mAP_sa"] != pytest.approx(metrics["mAP_glca"], abs=1e-3)
    assert {"mINP_sa", "rank5_glca", "rank10_sa"} <= set(metrics)

    without_glca = evaluate(_TwoBranches(glca=False), {"query": query, "gallery": gallery}, config)
    assert without_glca["mAP"] == without_glca["mAP_sa"] == pytest.approx(expected["_sa"][0], abs=1e-6)
    assert without_glca["mAP_glca"] is None and without_glca["rank1_glca"] is None
