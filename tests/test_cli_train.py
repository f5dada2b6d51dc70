"""End to end: `dcal train` then `dcal eval` on tiny synthetic sets; the run folder's contract; bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcal.cli import main
from dcal.engine.checkpoint import read_checkpoint
from dcal.engine.trained_model import load_trained
from dcal.errors import CheckpointError
from tiny_datasets import write_tiny_fgvc, write_tiny_reid

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = ["model.backbone=vit_tiny_patch16_224", "model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}",
              "model.pwca_blocks=2", "model.drop_path_rate=0.0", "data.synthetic=false", "data.num_workers=0",
              "train.threads=1", "train.warmup_epochs=0.5"]


def tiny_fgvc_args(root):
    return TINY_MODEL + ["data.dataset=image_folder", f"data.root={root}", "data.img_size=[32, 32]",
                         "data.resize_size=[36, 36]", "data.batch_size=16", "optim.lr=3e-3"]


@pytest.fixture(scope="module")
def fgvc_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fgvc")
    root = write_tiny_fgvc(tmp / "data")
    run = tmp / "run"
    assert main(["train", "--out", str(run), "train.epochs=4", "train.eval_every=2", *tiny_fgvc_args(root)]) == 0
    return run, root


def test_run_folder_contract(fgvc_run):
    run, _ = fgvc_run
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [2, 4]
    for r in records:
        assert {"top1", "top1_sa", "top1_glca", "top5"} <= set(r) and r["num_images"] == 24
        assert all(0.0 <= r[k] <= 100.0 for k in ("top1", "top1_sa", "top1_glca", "top5"))
        assert {"loss_weight_sa", "loss_weight_glca", "loss_weight_pwca"} <= set(r)  # w_b as trained so far
    weights = read_checkpoint(run / "checkpoints" / "last.pt")["criterion"]
    assert records[-1]["loss_weight_glca"] == pytest.approx(float(weights["weights.glca"]))
    assert records[0]["loss_weight_sa"] != records[-1]["loss_weight_sa"]  # learnt, not fixed at 0
    assert records[-1]["top1"] >= 75.0  # four colours with a marked corner: easily learnt
    assert (run / "config.yaml").is_file() and any((run / "tensorboard").iterdir())
    for name in ("last", "best"):
        state = torch.load(run / "checkpoints" / f"{name}.pt", weights_only=True)
        assert {"model", "config", "task", "class_names", "num_classes"} <= set(state)
        assert state["task"] == "fgvc" and state["class_names"] == [f"class_{c}" for c in range(4)]
        assert state["config"]["data"]["dataset"] == "image_folder"
    assert not list((run / "checkpoints").glob(".*tmp*"))


def test_eval_reproduces_the_recorded_metrics(fgvc_run, capsys):
    run, _ = fgvc_run
    best = max((json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()), key=lambda r: r["top1"])
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("top1", "top1_sa", "top1_glca", "top5"):
        assert printed[key] == pytest.approx(best[key])


def test_load_trained_rebuilds_the_trained_network(fgvc_run):
    run, root = fgvc_run
    trained = load_trained(run / "checkpoints" / "last.pt", device="cpu")
    model, config = trained.model, trained.config
    assert not model.training and config.data.root == str(root)
    state = read_checkpoint(run / "checkpoints" / "last.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["model"][key])
    scores = model(torch.randn(3, 3, 32, 32))
    assert scores.shape == (3, 4) and torch.allclose(scores.sum(1), torch.full((3,), 2.0), atol=1e-5)


def test_checkpoint_of_another_architecture_or_task(fgvc_run, capsys):
    run, _ = fgvc_run
    last = str(run / "checkpoints" / "last.pt")
    assert main(["eval", "--checkpoint", last, "model.glca=false"]) == 2
    assert "model.glca: checkpoint has True, config asks for False" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", last, "task=reid", "data.dataset=market1501"]) == 2
    assert "task: checkpoint has 'fgvc', config asks for 'reid'" in capsys.readouterr().err
    weights = read_checkpoint(last)["model"]
    from dcal.config import load_config
    from dcal.engine.checkpoint import load_weights
    from dcal.engine.model_setup import build_model

    other = build_model(load_config(None, TINY_MODEL + ["model.timm_kwargs={patch_size: 8, embed_dim: 48, depth: 2, num_heads: 2}",
                                                        "data.img_size=[32, 32]"]), 4)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(other, weights, last)


def test_not_a_checkpoint(tmp_path, capsys):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "other.pt")]) == 2
    assert "not a dcal checkpoint" in capsys.readouterr().err


def test_reid_train_and_eval(tmp_path, capsys):
    root = write_tiny_reid(tmp_path / "data")
    run = tmp_path / "run"
    args = TINY_MODEL + ["task=reid", "data.dataset=market1501", f"data.root={root}", "data.img_size=[32, 16]",
                         "data.batch_size=16", "data.num_instances=4", "data.padding=2", "optim.name=momentum",
                         "optim.lr=0.02", "optim.weight_decay=1e-4", "train.epochs=2", "train.eval_every=1"]
    assert main(["train", "--out", str(run), *args]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {"mAP", "mINP", "rank1", "mAP_sa", "mAP_glca", "rank1_sa", "rank1_glca"} <= set(records[-1])
    assert {"loss_weight_sa", "loss_weight_glca", "loss_weight_pwca"} <= set(records[-1])
    assert records[-1]["num_images"] == 12 + 36
    state = read_checkpoint(run / "checkpoints" / "last.pt")
    assert state["task"] == "reid" and state["class_names"] is None and state["num_classes"] == 6
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mAP", "rank1", "mAP_sa", "mAP_glca", "rank1_sa", "rank1_glca"):
        assert printed[key] == pytest.approx(records[-1][key])


def test_missing_dataset_names_the_layout_and_demo_data(tmp_path):
    """The entry-point script starts, parses the paper config and stops with a DatasetError."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_fgvc.py"), "--config", str(REPO / "configs" / "fgvc" / "cub200.yaml"),
         "--out", str(tmp_path / "run"), f"data.root={tmp_path / 'CUB_200_2011'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "images.txt" in result.stderr and "dcal demo-data" in result.stderr


def test_progress_is_one_line_per_epoch_outside_a_terminal(tmp_path, capsys):
    """In a log file (stderr not a terminal) there is no redrawn progress bar, and each epoch
    ends with one line: mean training loss, learning rate, throughput, time."""
    root = write_tiny_fgvc(tmp_path / "data")
    assert main(["train", "--out", str(tmp_path / "run"), "train.epochs=2", "train.eval_every=2",
                 *tiny_fgvc_args(root)]) == 0
    captured = capsys.readouterr()
    lines = [line.split() for line in captured.out.splitlines() if "train loss" in line]
    assert [line[1] for line in lines] == ["1/2", "2/2"]
    assert all(float(line[4]) > 0 and line[-1] == "s" for line in lines)
    assert "it/s" not in captured.err and "\r" not in captured.err
