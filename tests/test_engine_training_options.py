"""Training options beyond the defaults: bf16 autocast, gradient clipping, weights saved as .safetensors."""

import pytest
import torch
from safetensors.torch import load_file

from dcal.cli import main
from tiny_datasets import write_tiny_fgvc

ARGS = ["model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}", "model.pwca_blocks=2",
        "model.drop_path_rate=0.0", "data.dataset=image_folder", "data.synthetic=false", "data.num_workers=0",
        "data.img_size=[32, 32]", "data.resize_size=[36, 36]", "data.batch_size=16", "train.threads=1",
        "train.epochs=1", "train.eval_every=1"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_tiny_fgvc(tmp_path_factory.mktemp("data"))


def _train(run, root, *overrides):
    assert main(["train", "--out", str(run), *ARGS, f"data.root={root}", *overrides]) == 0
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def test_bf16_autocast_run_saves_safetensors_equal_to_the_checkpoint(tmp_path, root):
    state = _train(tmp_path / "run", root, "train.amp=true", "train.save_safetensors=true")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    for name in ("last", "best"):
        weights = load_file(str(tmp_path / "run" / "checkpoints" / f"{name}.safetensors"))
        stored = torch.load(tmp_path / "run" / "checkpoints" / f"{name}.pt", weights_only=True)["model"]
        assert weights.keys() == stored.keys()
        assert all(torch.equal(weights[k], stored[k]) for k in stored)


def test_gradient_clipping_bounds_every_update(tmp_path, root):
    """Plain SGD with lr 1 and the gradient norm clipped to 1e-6: the weights move by at most
    steps × 1e-6 from where an lr-0 run (same seed, same initial weights) leaves them."""
    sgd = ["optim.name=momentum", "optim.momentum=0.0", "optim.weight_decay=0.0", "train.warmup_epochs=0",
           "train.warmup_lr=0.0", "train.min_lr=0.0"]
    still = _train(tmp_path / "still", root, *sgd, "optim.lr=0.0")
    clipped = _train(tmp_path / "clipped", root, *sgd, "optim.lr=1.0", "train.clip_grad=1e-6")
    free = _train(tmp_path / "free", root, *sgd, "optim.lr=1.0")

    def distance(a, b):
        return sum((a["model"][k].double() - b["model"][k].double()).pow(2).sum() for k in a["model"]
                   if a["model"][k].is_floating_point()).sqrt().item()

    steps = clipped["global_step"]
    assert steps > 0
    assert distance(clipped, still) <= steps * 1e-6 * 1.01
    assert distance(free, still) > 100 * steps * 1e-6


def test_head_warmup_trains_the_heads_alone_then_everything(tmp_path, root):
    """``train.head_warmup_epochs``: in those epochs the weights outside the heads stay exactly where
    an lr-0 run (same seed, same initial weights) leaves them, under AdamW with weight decay and
    momentum, while the heads and the loss weights move; after them, everything trains."""
    adamw = ["optim.name=adamw", "optim.weight_decay=0.05", "train.warmup_epochs=0", "train.epochs=2"]
    still = _train(tmp_path / "still", root, *adamw, "optim.lr=0.0", "train.warmup_lr=0.0", "train.min_lr=0.0")
    warm = _train(tmp_path / "warm", root, *adamw, "optim.lr=1e-3", "train.head_warmup_epochs=2")
    half = _train(tmp_path / "half", root, *adamw, "optim.lr=1e-3", "train.head_warmup_epochs=1")
    heads = ("sa_head.", "glca_head.")
    body = [k for k in still["model"] if not k.startswith(heads) and still["model"][k].is_floating_point()]
    assert body and len(body) < len(still["model"])
    assert all(torch.equal(warm["model"][k], still["model"][k]) for k in body)
    for k in still["model"]:
        if k.startswith(heads) and k.endswith("weight"):
            assert not torch.equal(warm["model"][k], still["model"][k]), k
    assert all(not torch.equal(warm["criterion"][k], still["criterion"][k]) for k in still["criterion"])
    assert sum(not torch.equal(half["model"][k], still["model"][k]) for k in body) > len(body) // 2
