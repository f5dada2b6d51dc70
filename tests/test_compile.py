"""``train.compile=true``: the training step runs under torch.compile, checkpoints keep plain state
dicts, and a run resumed across the switch (either way) ends bitwise equal to an eager run.

torch.compile runs with dynamo's ``eager`` backend here: the same graph capture and guards as the
default backend without inductor's C++ compilation, which would take minutes on a CPU."""

import signal

import pytest
import torch

from dcal.cli import main
from dcal.engine import checkpoint as ckpt
from run_helpers import TINY_RUN
from tiny_datasets import write_tiny_fgvc


@pytest.fixture
def compile_calls(monkeypatch):
    calls = []
    real = torch.compile

    def eager_compile(module, **kwargs):
        calls.append(type(module).__name__)
        return real(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    return calls


def _stop_after_first_checkpoint(monkeypatch):
    """SIGINT right after the first ``last.pt``: the run stops one optimiser step later, checkpointed."""
    real = ckpt.save_checkpoint
    sent = []

    def save(state, path):
        real(state, path)
        if not sent:
            sent.append(path)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(ckpt, "save_checkpoint", save)


@pytest.mark.parametrize("first, then", [("true", "false"), ("false", "true")])
def test_resume_across_the_compile_switch_is_bitwise_equal(tmp_path, monkeypatch, compile_calls, first, then):
    root = write_tiny_fgvc(tmp_path / "data", classes=4, train_per_class=8)
    args = [*TINY_RUN, f"data.root={root}", "train.epochs=2", "train.eval_every=2"]
    assert main(["train", "--out", str(tmp_path / "eager"), *args]) == 0
    assert compile_calls == []

    with monkeypatch.context() as patch:
        _stop_after_first_checkpoint(patch)
        assert main(["train", "--out", str(tmp_path / "switched"), *args, f"train.compile={first}"]) == 130
    assert main(["train", "--resume", "--out", str(tmp_path / "switched"), f"train.compile={then}"]) == 0
    assert compile_calls == ["TrainStep"]  # the model and the loss, compiled once, in the half that asked

    a = torch.load(tmp_path / "eager" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "switched" / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] and list(a["model"]) == list(b["model"])  # plain keys, no _orig_mod.
    for key in ("model", "criterion"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    assert (tmp_path / "eager" / "metrics.jsonl").read_text() == (tmp_path / "switched" / "metrics.jsonl").read_text()
