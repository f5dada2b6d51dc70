"""Evaluation on other datasets (`dcal eval --dataset`, `eval.datasets`) and starting from a trained
dcal model (`model.init_from`), on a tiny Re-ID model trained once on a Market-1501-layout set."""

import json
import shutil

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from dcal.cli import main
from dcal.config import load_config
from dcal.engine.checkpoint import read_checkpoint, save_safetensors
from dcal.engine.init_from import init_from
from dcal.engine.model_setup import build_model, new_run_model
from dcal.errors import CheckpointError
from tiny_datasets import write_tiny_fgvc, write_tiny_reid

TINY_REID = ["task=reid", "model.backbone=vit_tiny_patch16_224",
             "model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}", "model.pwca_blocks=2",
             "model.drop_path_rate=0.0", "data.synthetic=false", "data.num_workers=0", "train.threads=1",
             "train.warmup_epochs=0.5", "data.img_size=[32, 16]", "data.batch_size=16", "data.num_instances=4",
             "data.padding=2", "optim.name=momentum", "optim.lr=0.02", "optim.weight_decay=1e-4"]


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    """Two epochs on a 6-identity Market-1501 layout, also scoring a 4-identity DukeMTMC-reID layout."""
    tmp = tmp_path_factory.mktemp("cross")
    market = write_tiny_reid(tmp / "market")
    duke = write_tiny_reid(tmp / "duke", ids=4, per_camera=3)
    run = tmp / "market-run"
    code = main(["train", "--out", str(run), *TINY_REID, "data.dataset=market1501", f"data.root={market}",
                 "train.epochs=2", "train.eval_every=1", f"eval.datasets=[{{dataset: dukemtmc, root: '{duke}'}}]"])
    assert code == 0
    return {"tmp": tmp, "market": market, "duke": duke, "run": run, "last": run / "checkpoints" / "last.pt"}


def test_eval_datasets_are_scored_under_their_prefix_and_never_pick_best(market_run):
    records = _records(market_run["run"])
    assert len(records) == 2
    for record in records:
        assert {"mAP", "rank1", "dukemtmc/mAP", "dukemtmc/rank1", "dukemtmc/mINP"} <= set(record)
        assert record["num_images"] == 12 + 36 and record["dukemtmc/num_images"] == 8 + 16
    best = read_checkpoint(market_run["run"] / "checkpoints" / "best.pt")
    assert best["best"]["mAP"] == max(r["mAP"] for r in records)


def test_eval_on_another_dataset_gives_the_periodic_score(market_run, capsys):
    last = _records(market_run["run"])[-1]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(market_run["last"]), "--dataset", "dukemtmc",
                 "--root", str(market_run["duke"]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["num_images"] == 8 + 16 and not any("/" in key for key in printed)
    for key in ("mAP", "rank1", "mINP"):
        assert printed[key] == pytest.approx(last[f"dukemtmc/{key}"])

    assert main(["eval", "--checkpoint", str(market_run["last"]), "--json"]) == 0  # its own test set and eval.datasets
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["mAP"] == pytest.approx(last["mAP"]) and printed["dukemtmc/mAP"] == pytest.approx(last["dukemtmc/mAP"])

    assert main(["eval", "--checkpoint", str(market_run["last"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("  dukemtmc: mAP ") and "(24 images)" in lines[-1]


def test_a_dataset_of_another_task_is_one_line(market_run, capsys):
    fgvc = write_tiny_fgvc(market_run["tmp"] / "fgvc", classes=2, train_per_class=1, test_per_class=1)
    last = str(market_run["last"])
    cases = [
        (["eval", "--checkpoint", last, "--dataset", "image_folder", "--root", str(fgvc)],
         ["--dataset image_folder is a fgvc dataset", last, "reid checkpoint"]),
        (["eval", "--checkpoint", last, "--dataset", "dukemtmc"], ["--dataset and --root go together"]),
        (["train", "--out", str(market_run["tmp"] / "bad-run"), *TINY_REID, "data.dataset=market1501",
          f"data.root={market_run['market']}", f"eval.datasets=[{{dataset: image_folder, root: '{fgvc}'}}]"],
         ["eval.datasets[0]: 'image_folder' is a fgvc dataset", "task='reid'"]),
        (["train", "--out", str(market_run["tmp"] / "bad-run2"), *TINY_REID, "data.dataset=market1501",
          f"data.root={market_run['market']}", "eval.datasets=[{dataset: dukemtmc}]"],
         ["eval.datasets[0]: expected a mapping with keys dataset and root"]),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and all(text in err for text in expected), err


def _duke_config(market_run, *extra):
    return load_config(None, [*TINY_REID, "data.dataset=dukemtmc", f"data.root={market_run['duke']}",
                              f"model.init_from={market_run['last']}", *extra])


def test_init_from_loads_all_but_the_classifiers_of_another_class_count(market_run, capsys):
    source = read_checkpoint(market_run["last"])["model"]
    capsys.readouterr()
    model = new_run_model(_duke_config(market_run), 4)
    out = capsys.readouterr().out
    assert f"model.init_from {market_run['last']} (weights): loaded {len(source) - 2} tensors" in out
    assert ("re-initialised: sa_head.classifier.weight (file (6, 32), model (4, 32)), "
            "glca_head.classifier.weight (file (6, 32), model (4, 32))") in out
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("classifier.weight"):
            assert value.shape[0] == 4 and source[key].shape[0] == 6
        else:
            assert torch.equal(value, source[key]), key  # backbone, GLCA block, norms, BNNeck BatchNorms


def test_init_from_safetensors_and_resampled_position_embedding(market_run, capsys):
    state = read_checkpoint(market_run["last"])
    weights = market_run["tmp"] / "market.safetensors"
    save_safetensors(state["model"], weights, {"config": state["config"], "num_classes": 6, "class_names": None})
    model = new_run_model(_duke_config(market_run, "data.img_size=[48, 32]", f"model.init_from={weights}"), 4)
    out = capsys.readouterr().out
    assert f"model.init_from {weights} (weights)" in out
    assert "resampled: backbone.pos_embed (1, 9, 32) -> (1, 25, 32)" in out
    expected = resample_abs_pos_embed(state["model"]["backbone.pos_embed"], new_size=[6, 4], old_size=[4, 2],
                                      num_prefix_tokens=1, interpolation="bicubic", antialias=True)
    assert torch.equal(model.state_dict()["backbone.pos_embed"], expected)
    glca = [key for key in state["model"] if key.startswith("glca.")]
    assert glca and all(torch.equal(model.state_dict()[key], state["model"][key]) for key in glca)


def test_init_from_another_architecture_is_one_line(market_run, capsys):
    with pytest.raises(CheckpointError, match="does not fit the model beyond its heads") as error:
        init_from(build_model(_duke_config(market_run, "model.timm_kwargs={patch_size: 8, embed_dim: 48, depth: 2, num_heads: 2}",
                                           "model.init_from=null"), 4), market_run["last"])
    assert "backbone.cls_token (file (1, 1, 32), model (1, 1, 48))" in str(error.value)
    missing = market_run["tmp"] / "missing.pt"
    capsys.readouterr()
    assert main(["train", "--out", str(market_run["tmp"] / "bad-init"), *TINY_REID, "data.dataset=dukemtmc",
                 f"data.root={market_run['duke']}", f"model.init_from={missing}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"model.init_from: {missing} not found" in err


def test_training_from_init_from_then_resume_needs_no_init_file(market_run, capsys):
    init = market_run["tmp"] / "init.pt"
    shutil.copy(market_run["last"], init)
    run = market_run["tmp"] / "duke-run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_REID, "data.dataset=dukemtmc", f"data.root={market_run['duke']}",
                 f"model.init_from={init}", "train.epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "model.init_from" in out and "re-initialised: sa_head.classifier.weight" in out
    assert read_checkpoint(run / "checkpoints" / "last.pt")["num_classes"] == 4
    init.unlink()  # --resume takes every weight from the run's own checkpoint
    assert main(["train", "--resume", "--allow-changes", "--out", str(run), "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "model.init_from" not in out and len(_records(run)) == 2
