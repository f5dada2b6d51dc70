"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bitwise equal to an uninterrupted run.

The run uses everything that carries state or randomness: stochastic depth, PWCA distractors,
random crops and flips, gradient accumulation, EMA, warmup + cosine, the learnable loss weights.
It writes ``last.pt`` after every optimiser step; the test kills it at a step in the middle of the
first epoch (whichever checkpoint is the newest then) and resumes.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcal.cli import main
from dcal.errors import TrainingDiverged
from tiny_datasets import write_tiny_fgvc

ARGS = ["model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}", "model.pwca_blocks=2",
        "model.drop_path_rate=0.2", "data.dataset=image_folder", "data.synthetic=false", "data.num_workers=0",
        "data.img_size=[32, 32]", "data.resize_size=[36, 36]", "data.batch_size=8", "train.accum_steps=2",
        "train.threads=1", "train.epochs=3", "train.eval_every=1", "train.warmup_epochs=0.5", "train.ema=true",
        "train.ema_decay=0.9", "train.checkpoint_every=1", "optim.lr=2e-3"]
STEPS_PER_EPOCH = 64 // 8


def _step(path):
    try:
        return torch.load(path, weights_only=True)["global_step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def _assert_equal_state(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_killed_and_resumed_run_equals_straight_run(tmp_path):
    root = write_tiny_fgvc(tmp_path / "data")
    args = ARGS + [f"data.root={root}"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", "--out", str(straight), *args]) == 0

    kill_at = STEPS_PER_EPOCH + 3  # inside the second epoch
    process = subprocess.Popen([sys.executable, "-m", "dcal.cli", "train", "--out", str(killed), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while _step(last) < kill_at and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    stopped_at = _step(last)
    assert 0 < stopped_at < 3 * STEPS_PER_EPOCH

    assert main(["train", "--out", str(killed), "--resume"]) == 0
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * STEPS_PER_EPOCH
    for key in ("model", "model_ema", "optimizer", "scheduler", "criterion", "scaler", "rng", "best", "metrics"):
        _assert_equal_state(a[key], b[key], key)
    assert (straight / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()
    assert [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    root = write_tiny_fgvc(tmp_path / "data")
    run = tmp_path / "run"
    args = ARGS + [f"data.root={root}", "optim.name=sgd", "optim.lr=1e30", "train.warmup_epochs=0", "train.accum_steps=1",
                   "train.ema=false"]
    with pytest.raises(TrainingDiverged, match=r"at optimiser step (\d+)") as error:
        from dcal.config import load_config
        from dcal.engine.trainer import train

        train(load_config(None, args), run)
    step = int(error.value.args[0].split("optimiser step ")[1].split()[0])
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["global_step"] == step - 1  # the checkpoint of the step before the loss diverged
