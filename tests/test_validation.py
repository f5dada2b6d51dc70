"""Honest model selection: validation splits (an official one, or a hold-out of the training set
deterministic in the seed), val_* metrics beside the test metrics, best.pt chosen on validation,
and summary.json with the last epoch's and the selected epoch's test metrics."""

import json
from collections import Counter

import pytest
import torch

from dcal.cli import main
from dcal.data.records import DatasetSplits, FGVCRecord, ReIDRecord
from dcal.data.validation import hold_out_identities, hold_out_stratified, query_gallery, with_validation
from dcal.errors import ConfigError
from test_cli_train import TINY_MODEL, tiny_fgvc_args
from tiny_datasets import write_tiny_fgvc, write_tiny_reid


def _fgvc_records(per_class=(10, 6, 3)):
    return [FGVCRecord(path=f"{c}_{i}.jpg", label=c) for c, n in enumerate(per_class) for i in range(n)]


def test_fgvc_hold_out_is_stratified_and_deterministic():
    records = _fgvc_records()
    kept, val = hold_out_stratified(records, 0.2, seed=3)
    assert Counter(r.label for r in val) == {0: 2, 1: 1, 2: 1}
    assert sorted(kept + val, key=records.index) == records and not set(kept) & set(val)
    assert hold_out_stratified(records, 0.2, seed=3) == (kept, val)
    assert hold_out_stratified(records, 0.2, seed=4) != (kept, val)
    _, most = hold_out_stratified(records, 0.99, seed=0)  # every class keeps a training image
    assert Counter(r.label for r in most) == {0: 9, 1: 5, 2: 2}


def _reid_records(ids=10, cameras=3, per_camera=2):
    return [ReIDRecord(path=f"{p}_{c}_{i}.jpg", pid=p, camid=c, original_pid=100 + p)
            for p in range(ids) for c in range(cameras) for i in range(per_camera)]


def test_reid_hold_out_takes_whole_identities_and_relabels_the_rest():
    records = _reid_records()
    kept, val = hold_out_identities(records, 0.3, seed=0)
    held = {r.original_pid for r in val}
    assert len(held) == 3 and not held & {r.original_pid for r in kept}
    assert sorted({r.pid for r in kept}) == list(range(7))
    assert all(r.pid == r.original_pid for r in val)
    assert len(val) == 3 * 3 * 2
    query, gallery = query_gallery(val, seed=0)
    assert Counter((r.pid, r.camid) for r in query) == {(p, c): 1 for p in held for c in range(3)}
    assert len(gallery) == len(val) - len(query) and not set(query) & set(gallery)
    assert hold_out_identities(records, 0.3, seed=0) == (kept, val)


def test_official_val_split_must_not_be_trained_on():
    train, val = _fgvc_records((4, 4)), [FGVCRecord(path="v.jpg", label=0)]
    splits = DatasetSplits("aircraft", "fgvc", ".", {"train": train, "val": val, "trainval": train + val,
                                                     "test": val}, 2, train_split="trainval")
    with pytest.raises(ConfigError, match="shares 1 images with the training split 'trainval'"):
        with_validation(splits, "trainval", "val", None, 0)
    assert with_validation(splits, "train", "val", None, 0).splits["holdout_val"] == val
    with pytest.raises(ConfigError, match="not both"):
        with_validation(splits, "train", "val", 0.1, 0)
    with pytest.raises(ConfigError, match=r"data.val_fraction must be in \(0, 1\)"):
        with_validation(splits, "train", None, 1.5, 0)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_fgvc_run_selects_best_on_validation(tmp_path):
    root = write_tiny_fgvc(tmp_path / "data")  # 4 classes x 16 training images
    run = tmp_path / "run"
    args = tiny_fgvc_args(root) + ["train.epochs=3", "train.eval_every=1", "data.val_fraction=0.25"]
    assert main(["train", "--out", str(run), *args]) == 0
    records = _records(run)
    assert all({"top1", "val_top1", "val_top1_sa", "val_top5"} <= set(r) for r in records)
    assert all(r["val_num_images"] == 16 and r["num_images"] == 24 for r in records)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    chosen = max(records, key=lambda r: r["val_top1"])  # the first of equal ones
    assert best["best"]["epoch"] == chosen["epoch"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selected_on"] == "validation" and summary["selection_metric"] == "val_top1"
    assert not summary["optimistic"]
    assert summary["best_epoch"]["epoch"] == chosen["epoch"]
    assert summary["best_epoch"]["test"]["top1"] == chosen["top1"]
    assert summary["best_epoch"]["val"]["top1"] == chosen["val_top1"]
    assert summary["last_epoch"]["epoch"] == 3 and summary["last_epoch"]["test"]["top1"] == records[-1]["top1"]


def test_reid_run_validates_on_held_out_identities(tmp_path, capsys):
    root = write_tiny_reid(tmp_path / "data", ids=8)
    run = tmp_path / "run"
    args = TINY_MODEL + ["task=reid", "data.dataset=market1501", f"data.root={root}", "data.img_size=[32, 16]",
                         "data.batch_size=16", "data.num_instances=4", "data.padding=2", "optim.name=momentum",
                         "optim.lr=0.02", "train.epochs=1", "data.val_fraction=0.25"]
    assert main(["train", "--out", str(run), *args]) == 0
    (record,) = _records(run)
    assert record["val_num_images"] == 2 * 2 * 4 and {"val_mAP", "val_rank1", "mAP"} <= set(record)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["num_classes"] == 6  # 2 of the 8 training identities held out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection_metric"] == "val_mAP" and summary["best_epoch"]["test"]["mAP"] == record["mAP"]
    assert "validation" in capsys.readouterr().out


def test_without_validation_the_summary_says_it_is_optimistic(tmp_path, capsys):
    root = write_tiny_fgvc(tmp_path / "data", classes=2, train_per_class=8, test_per_class=2)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *tiny_fgvc_args(root), "train.epochs=1"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selected_on"] == "test" and summary["optimistic"] and summary["best_epoch"]["val"] is None
    assert "optimistic" in capsys.readouterr().out
