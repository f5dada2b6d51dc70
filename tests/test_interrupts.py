"""Ctrl-C (SIGINT) and SIGTERM: the run checkpoints the step in progress, says in one line how to
resume, and the resumed run ends bitwise equal to an uninterrupted one.  A stale temporary file of
a killed writer is removed on the next start."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from dcal.cli import main
from run_helpers import STEPS_PER_EPOCH, TINY_RUN, temporaries
from test_engine_resume import _assert_equal_state
from tiny_datasets import write_tiny_fgvc

EPOCHS = 3
ARGS = TINY_RUN + [f"train.epochs={EPOCHS}", "train.eval_every=3", "train.ema=true", "train.ema_decay=0.9"]
STATE_KEYS = ("model", "model_ema", "optimizer", "scheduler", "criterion", "scaler", "rng", "best", "metrics")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run, and the data it trained on."""
    tmp = tmp_path_factory.mktemp("straight")
    root = write_tiny_fgvc(tmp / "data", classes=4, train_per_class=8, test_per_class=2)
    assert main(["train", "--out", str(tmp / "run"), *ARGS, f"data.root={root}"]) == 0
    return tmp / "run", root


def _wait_for(path, timeout=120):
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.005)
    assert path.exists(), f"{path} was not written in {timeout} s"


def _assert_resumes_to_the_straight_run(run, straight_run):
    assert main(["train", "--out", str(run), "--resume"]) == 0
    a = torch.load(straight_run / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for key in STATE_KEYS:
        _assert_equal_state(a[key], b[key], key)
    assert (straight_run / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert not temporaries(run)


def test_ctrl_c_checkpoints_the_step_and_the_run_resumes_exactly(straight, tmp_path, capsys):
    straight_run, root = straight
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"

    def press_ctrl_c():  # once the first epoch's checkpoint is written: in the second epoch
        _wait_for(last)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    capsys.readouterr()
    code = main(["train", "--out", str(run), *ARGS, f"data.root={root}"])
    presser.join()
    assert code == 128 + signal.SIGINT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dcal train: interrupted by SIGINT")
    state = torch.load(last, weights_only=True)
    assert STEPS_PER_EPOCH < state["global_step"] <= EPOCHS * STEPS_PER_EPOCH
    assert f"{last} (optimiser step {state['global_step']})" in err
    assert err.endswith(f"resume with: dcal train --resume --out {run}")
    assert not temporaries(run)

    # A temporary checkpoint left by a writer that was killed: removed on the next start.
    finished_writer = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = last.with_name(f".last.pt.tmp{int(finished_writer.stdout)}")
    stale.write_bytes(b"half a checkpoint")
    _assert_resumes_to_the_straight_run(run, straight_run)


def test_sigterm_checkpoints_the_step_and_the_run_resumes_exactly(straight, tmp_path):
    straight_run, root = straight
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    process = subprocess.Popen([sys.executable, "-m", "dcal.cli", "train", "--out", str(run), *ARGS, f"data.root={root}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(last)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("dcal train: interrupted by SIGTERM") and "Traceback" not in err
    assert lines[-1].endswith(f"resume with: dcal train --resume --out {run}")
    assert torch.load(last, weights_only=True)["global_step"] > STEPS_PER_EPOCH
    _assert_resumes_to_the_straight_run(run, straight_run)
