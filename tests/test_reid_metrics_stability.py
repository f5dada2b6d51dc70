"""reid_metrics ranks features of any scale and offset as the per-query algorithm does on exact
distances (a large common offset used to cancel in the expanded squared distance), and identities
or cameras that are not integers get a clear error."""

import numpy as np
import pytest
import torch

from dcal.evaluation import EvaluationError, reid_metrics
from test_reid_metrics import eval_market1501, random_problem


@pytest.mark.parametrize("offset, scale", [(1e4, 1.0), (3e5, 1.0), (0.0, 1e-30), (0.0, 1e20), (1e3, 1e-3)])
def test_offset_and_scale_do_not_change_the_ranking(offset, scale):
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_problem(np.random.default_rng(3), 60, 400, 30, 4, 32)
    exact = ((qf.astype(np.float64)[:, None, :] - gf.astype(np.float64)[None, :, :]) ** 2).sum(2)
    expected = eval_market1501(exact, q_pids, g_pids, q_camids, g_camids, 50)
    shifted = [((f.astype(np.float64) + offset) * scale).astype(np.float32) for f in (qf, gf)]
    result = reid_metrics(*shifted, q_pids, g_pids, q_camids, g_camids)
    assert result["mAP"] == pytest.approx(expected["mAP"], abs=2e-3)
    assert result["mINP"] == pytest.approx(expected["mINP"], abs=2e-3)
    assert np.allclose(result["cmc"], expected["cmc"], atol=1 / 60 + 1e-9)


def test_the_expanded_distance_alone_ranks_offset_features_wrongly():
    """What the test above guards against: in float32, ‖q‖² + ‖g‖² − 2q·g of offset features is noise."""
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_problem(np.random.default_rng(3), 60, 400, 30, 4, 32)
    q, g = torch.from_numpy(qf + 1e4), torch.from_numpy(gf + 1e4)
    naive = ((q**2).sum(1, keepdim=True) + (g**2).sum(1) - 2 * q @ g.T).numpy()
    exact = ((qf.astype(np.float64)[:, None, :] - gf.astype(np.float64)[None, :, :]) ** 2).sum(2)
    assert abs(eval_market1501(naive, q_pids, g_pids, q_camids, g_camids, 50)["mAP"]
               - eval_market1501(exact, q_pids, g_pids, q_camids, g_camids, 50)["mAP"]) > 0.05


@pytest.mark.parametrize("labels, message", [
    (np.array(["a", "b", "c"]), "q_pids must hold numbers (integers for identities and cameras), got dtype <U1"),
    (np.array([object(), object(), object()]), "q_pids must hold numbers"),
    ([1.0, 2.0, 3.0], "q_pids must hold integers, got dtype torch.float64"),
])
def test_identities_that_are_not_integers(labels, message):
    features = torch.randn(3, 4)
    with pytest.raises(EvaluationError) as error:
        reid_metrics(features, features, labels, [1, 2, 3], [0, 0, 0], [1, 1, 1])
    assert message in str(error.value)
