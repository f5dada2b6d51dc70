"""Re-ID evaluation without camera ids (only the query image itself is left out) and VehicleID's
gallery-draw protocol, each against a plain per-query reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcal.data.records import NO_CAMERA, ReIDRecord
from dcal.evaluation.camera_filter import QUERY_IMAGE, SAME_CAMERA, exclusion_groups
from dcal.data.gallery_draws import gallery_draws
from dcal.evaluation.vehicleid_protocol import vehicleid_metrics


def reference(qf, gf, q_pids, g_pids, q_paths, g_paths) -> dict:
    """Per query: leave out the gallery item that is the query's own file, rank the rest by squared
    Euclidean distance (stable), score the same-identity items; queries without one are skipped."""
    aps, inps, firsts = [], [], []
    for i in range(len(qf)):
        keep = np.array([g_paths[j] != q_paths[i] for j in range(len(gf))])
        d = ((gf[keep] - qf[i]) ** 2).sum(1)
        matches = (g_pids[keep] == q_pids[i])[np.argsort(d, kind="stable")]
        if not matches.any():
            continue
        positions = np.flatnonzero(matches)
        aps.append(np.mean(np.arange(1, len(positions) + 1) / (positions + 1)))
        inps.append(len(positions) / (positions[-1] + 1))
        firsts.append(positions[0])
    firsts = np.array(firsts)
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "rank1": np.mean(firsts < 1), "rank5": np.mean(firsts < 5)}


class Features(torch.utils.data.Dataset):
    """An ImageDataset stand-in whose "image" is the feature the identity model returns."""

    def __init__(self, features, records):
        self.features, self.records = torch.as_tensor(features, dtype=torch.float32), records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return {"image": self.features[i], "target": self.records[i].pid, "index": i}


class Identity(torch.nn.Module):
    """A model whose SA feature is its input (the features below are L2-normalised already)."""

    neck_feat = "before"

    def forward_branches(self, x):
        return {"sa": {"feat": x}}


def problem(seed=0, ids=6, per_id=4, dim=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    pids = np.repeat(np.arange(1, ids + 1), per_id)
    features = centres[pids - 1] + rng.normal(scale=0.9, size=(len(pids), dim))
    features /= np.linalg.norm(features, axis=1, keepdims=True)  # as the model's inference features are
    return features.astype(np.float32), pids, np.array([f"/data/img_{i:03d}.jpg" for i in range(len(pids))])


def test_exclusion_groups_leave_out_only_the_same_file():
    q, g, rule = exclusion_groups([NO_CAMERA, NO_CAMERA], [NO_CAMERA] * 3, ["/a/x.jpg", "/a/y.jpg"],
                                  ["/a/./y.jpg", "/a/z.jpg", "/a/x.jpg"])
    assert rule == QUERY_IMAGE and q.tolist() == [g[2], g[0]] and len(set(g.tolist())) == 3
    q, g, rule = exclusion_groups([0, 1], [1, 1, 0], ["a", "b"], ["c", "d", "e"])
    assert rule == SAME_CAMERA and q.tolist() == [0, 1] and g.tolist() == [1, 1, 0]


def test_evaluation_without_cameras_matches_the_per_query_reference(capsys):
    from dcal.config import load_config
    from dcal.engine.evaluator import evaluate
    from dcal.evaluation.report import format_metrics

    features, pids, paths = problem()
    # Every image is a query against the whole set (reid_folder's test/ layout), and a few
    # gallery-only images: the query's own image is left out, its same-identity images all count.
    query = list(range(len(pids)))
    gallery = list(range(len(pids))) + [0, 5]  # two files listed twice in the gallery
    records = lambda idx: [ReIDRecord(path=str(paths[i]), pid=int(pids[i]), camid=NO_CAMERA, original_pid=int(pids[i]))
                           for i in idx]
    config = load_config(None, ["task=reid", "eval.batch_size=5"])
    metrics = evaluate(Identity(), {"query": Features(features[query], records(query)),
                                    "gallery": Features(features[gallery], records(gallery))}, config)
    expected = reference(features[query], features[gallery], pids[query], pids[gallery], paths[query], paths[gallery])
    assert metrics["gallery_exclusion"] == QUERY_IMAGE
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(100 * value, abs=1e-9), key
    # The camera rule with one camera for all would drop every same-identity image instead.
    assert "no camera ids: only each query's own image is left out" in format_metrics("reid", metrics)
    with_cameras = [ReIDRecord(path=r.path, pid=r.pid, camid=i % 2, original_pid=r.pid) for i, r in enumerate(records(query))]
    gallery_cameras = [ReIDRecord(path=r.path, pid=r.pid, camid=(i + 1) % 2, original_pid=r.pid)
                       for i, r in enumerate(records(gallery))]
    camera_metrics = evaluate(Identity(), {"query": Features(features[query], with_cameras),
                                           "gallery": Features(features[gallery], gallery_cameras)}, config)
    assert camera_metrics["gallery_exclusion"] == SAME_CAMERA and camera_metrics["mAP"] != metrics["mAP"]
    assert "no camera ids" not in format_metrics("reid", camera_metrics)


def test_gallery_draws_pick_one_image_per_identity_uniformly_and_reproducibly():
    pids = np.array([7, 3, 7, 7, 3, 9])
    draws = gallery_draws(pids, num_draws=300, seed=4)
    assert all(sorted(pids[d].tolist()) == [3, 7, 9] for d in draws)
    assert [d.tolist() for d in gallery_draws(pids, num_draws=300, seed=4)] == [d.tolist() for d in draws]
    assert [d.tolist() for d in gallery_draws(pids, num_draws=300, seed=5)] != [d.tolist() for d in draws]
    chosen = np.bincount(np.concatenate(draws), minlength=len(pids)) / len(draws)
    assert chosen[5] == 1.0  # identity 9 has one image
    assert np.all(np.abs(chosen[[0, 2, 3]] - 1 / 3) < 0.1) and np.all(np.abs(chosen[[1, 4]] - 1 / 2) < 0.1)


def test_vehicleid_protocol_matches_a_plain_reference():
    features, pids, paths = problem(seed=3, ids=7, per_id=3)
    result = vehicleid_metrics(features, pids, paths, num_draws=4, seed=11)
    per_draw = []
    for gallery in gallery_draws(pids, num_draws=4, seed=11):
        query = np.setdiff1d(np.arange(len(pids)), gallery)
        ranks = []  # rank (0-based) of the single true match of each query
        for q in query:
            d = ((features[gallery] - features[q]) ** 2).sum(1)
            order = np.argsort(d, kind="stable")
            ranks.append(int(np.flatnonzero(pids[gallery][order] == pids[q])[0]))
        ranks = np.array(ranks)
        per_draw.append([np.mean(1 / (ranks + 1)), np.mean(ranks < 1), np.mean(ranks < 5)])
    per_draw = np.array(per_draw)
    assert result["num_draws"] == 4
    assert result["mAP"] == pytest.approx(per_draw[:, 0].mean()) and result["mAP_std"] == pytest.approx(per_draw[:, 0].std())
    assert result["mINP"] == pytest.approx(per_draw[:, 0].mean())  # one true match: INP = AP
    assert result["cmc"][0] == pytest.approx(per_draw[:, 1].mean()) and result["cmc_std"][0] == pytest.approx(per_draw[:, 1].std())
    assert result["cmc"][4] == pytest.approx(per_draw[:, 2].mean())
    assert result["mAP_std"] > 0  # the draws differ


def test_evaluator_scores_gallery_draws_of_a_test_split():
    from dcal.config import load_config
    from dcal.engine.evaluator import evaluate
    from dcal.evaluation.report import format_metrics

    features, pids, paths = problem(seed=5, ids=5, per_id=3)
    records = [ReIDRecord(path=str(p), pid=int(i), camid=NO_CAMERA, original_pid=int(i)) for p, i in zip(paths, pids)]
    metrics = evaluate(Identity(), {"test": Features(features, records)}, load_config(None, ["task=reid", "eval.batch_size=4"]))
    expected = vehicleid_metrics(features, pids, paths)
    assert metrics["gallery_draws"] == 10 and metrics["num_images"] == len(pids)
    assert metrics["mAP"] == pytest.approx(100 * expected["mAP"]) and metrics["mAP_std"] == pytest.approx(100 * expected["mAP_std"])
    assert metrics["rank1"] == pytest.approx(100 * expected["cmc"][0])
    assert metrics["rank5_std"] == pytest.approx(100 * expected["cmc_std"][4])
    line = format_metrics("reid", metrics)
    assert f"mAP {metrics['mAP']:.2f}% ± {metrics['mAP_std']:.2f}" in line and "10 gallery draws" in line


@pytest.mark.filterwarnings("ignore::dcal.data.layout.SplitSizeWarning")
def test_train_and_eval_on_vehicleid_report_the_draws(tmp_path, capsys):
    import json

    from dcal.cli import main
    from tiny_datasets import write_tiny_vehicleid

    root = write_tiny_vehicleid(tmp_path / "data")
    run = tmp_path / "run"
    args = ["model.backbone=vit_tiny_patch16_224", "model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}",
            "model.pwca_blocks=2", "model.drop_path_rate=0.0", "data.synthetic=false", "data.num_workers=0",
            "train.threads=1", "train.warmup_epochs=0.5", "task=reid", "data.dataset=vehicleid", f"data.root={root}",
            "data.img_size=[32, 16]", "data.batch_size=16", "data.num_instances=4", "data.padding=2",
            "optim.name=momentum", "optim.lr=0.02", "train.epochs=1"]
    assert main(["train", "--out", str(run), *args]) == 0
    assert "10 gallery draws)  [no camera ids" in capsys.readouterr().out
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["gallery_draws"] == 10 and record["gallery_exclusion"] == QUERY_IMAGE and record["num_images"] == 12
    assert {"mAP_std", "rank1_std", "rank5_std", "mINP_std"} <= set(record)
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["mAP"] == pytest.approx(record["mAP"]) and printed["mAP_std"] == pytest.approx(record["mAP_std"])


def test_rank_list_without_cameras_leaves_out_only_the_query_image(tmp_path):
    from PIL import Image

    from dcal.export.features import Features as SplitFeatures
    from dcal.viz.rank_list import BORDER, GAP, MATCH_COLOR, MISTAKE_COLOR, rank_list_figure

    paths = [str(tmp_path / f"{name}.png") for name in ("own", "other_vehicle", "same_vehicle")]
    for path in paths:
        Image.new("RGB", (8, 16), (128, 128, 128)).save(path)
    gallery = SplitFeatures(features=np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]], np.float32), labels=np.array([4, 9, 4]),
                            cameras=np.full(3, NO_CAMERA), paths=np.array(paths))
    query = SplitFeatures(features=gallery.features[:1], labels=gallery.labels[:1], cameras=gallery.cameras[:1],
                          paths=gallery.paths[:1])
    figure = np.asarray(rank_list_figure(query, gallery, [0], topk=5, tile_height=32, input_size=(32, 16)))
    tile_w, margin = 16 + 2 * BORDER, 6  # the figure is the row inside a 6-pixel margin
    # Two tiles after the query: the other vehicle (red), then the query's other image (green); the
    # query's own file is not ranked, and its same-identity image is not dropped as a same-camera match.
    assert figure.shape[1] == 3 * tile_w + 4 * GAP + 2 * margin
    assert figure[margin + 1, margin + tile_w + 2 * GAP + 1].tolist() == list(MISTAKE_COLOR)
    assert figure[margin + 1, margin + 2 * tile_w + 3 * GAP + 1].tolist() == list(MATCH_COLOR)
