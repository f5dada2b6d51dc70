"""DDP on the CPU: two gloo processes train together; both end with the same weights, and the
sharded evaluation counts every test image once and agrees with a single-process evaluation."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from dcal.config import load_config
from tiny_datasets import write_tiny_fgvc

ARGS = ["model.timm_kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}", "model.pwca_blocks=2",
        "data.dataset=image_folder", "data.synthetic=false", "data.num_workers=0", "data.img_size=[32, 32]",
        "data.resize_size=[36, 36]", "data.batch_size=16", "train.threads=1", "train.epochs=2", "train.eval_every=1",
        "train.warmup_epochs=0.5", "optim.lr=3e-3", "train.device=cpu", "eval.batch_size=5"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, args, out):
    from dcal.engine import distributed
    from dcal.engine.trainer import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    context = distributed.setup("cpu", threads=1)
    result = train(load_config(None, args), out, context=context)
    torch.save({"model": result.model.state_dict(), "criterion": result.criterion.state_dict(),
                "metrics": result.metrics}, os.path.join(out, f"rank{rank}.pt"))
    distributed.finish(context, 0)


def test_two_gloo_processes(tmp_path):
    root = write_tiny_fgvc(tmp_path / "data", test_per_class=7)  # 28 test images: shards of 14, batches of 5
    args = ARGS + [f"data.root={root}"]
    mp.spawn(_worker, args=(2, _free_port(), args, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ("model", "criterion"):
        assert ranks[0][key].keys() == ranks[1][key].keys()
        for name, value in ranks[0][key].items():
            assert torch.equal(value, ranks[1][key][name]), name
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert ranks[0]["metrics"]["num_images"] == 28

    # The same weights evaluated by one process over the whole test split.
    from dcal.engine.data_setup import build_eval_data
    from dcal.engine.evaluator import evaluate
    from dcal.engine.model_setup import build_model

    config = load_config(None, args)
    model = build_model(config, 4)
    model.load_state_dict(ranks[0]["model"])
    single = evaluate(model, {"test": build_eval_data(config, "test")}, config)
    for key in ("top1", "top1_sa", "top1_glca", "top5"):
        assert single[key] == pytest.approx(ranks[0]["metrics"][key])
    # the checkpoint written by rank 0 holds these weights
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(v, last["model"][k]) for k, v in ranks[0]["model"].items())
    assert last["global_step"] == 2 * (64 // 16)
