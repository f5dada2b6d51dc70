"""``train.compile=true`` on the CPU: the demo's training step compiled by ``torch.compile`` against
eager, side by side; prints JSON.

The step is the trainer's (:class:`dcal.engine.train_step.TrainStep`: SA + GLCA + PWCA and the
uncertainty-weighted loss, backward, an AdamW step at the demo's lr and weight decay) on the
synthetic FGVC demo's model and batch
(``configs/demo/fgvc.yaml``: a 4-block ViT, 64², batch 32, one thread).  Both copies start from the
same weights and see the same batches; the two are stepped alternately, so a busy machine slows
both alike.  Reported: the first compiled step (compilation included), the median step time of
each after ``--warmup`` steps, their ratio, and the largest difference between the two copies'
losses over the measured steps (compiled kernels round differently; it should stay small).

Run: ``PYTHONPATH=. python benchmarks/compile_step.py`` (about two minutes on 2 cores, most of it
compiling).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcal.config import load_config  # noqa: E402
from dcal.engine.losses import DCALLoss  # noqa: E402
from dcal.engine.model_setup import build_model  # noqa: E402
from dcal.engine.train_step import TrainStep  # noqa: E402
from dcal.model.pairing import distractor_index  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo" / "fgvc.yaml"
CLASSES = 10


def make_step(module: torch.nn.Module, config, forward):
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)

    def step(images, targets, pair_index) -> float:
        loss, _ = forward(images, targets, pair_index)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps of each")
    parser.add_argument("--warmup", type=int, default=3, help="steps of each before measuring (after compiling)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the demo's train.threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(DEMO)
    height, width = config.data.img_size
    model = build_model(config, CLASSES).train()
    eager = TrainStep(model, DCALLoss.for_model(model))
    compiled = copy.deepcopy(eager)
    steps = {"eager": make_step(eager, config, eager), "compiled": make_step(compiled, config, torch.compile(compiled))}
    generator = torch.Generator().manual_seed(0)

    def batch():
        targets = torch.randint(0, CLASSES, (config.data.batch_size,), generator=generator)
        images = torch.randn(config.data.batch_size, 3, height, width, generator=generator)
        return images, targets, distractor_index(targets, generator=generator)

    load_before = round(os.getloadavg()[0], 2)
    first = batch()
    started = time.perf_counter()
    steps["compiled"](*first)
    compile_s = time.perf_counter() - started
    steps["eager"](*first)
    for _ in range(args.warmup):
        inputs = batch()
        for step in steps.values():
            step(*inputs)
    times = {name: [] for name in steps}
    losses = {name: [] for name in steps}
    for _ in range(args.steps):
        inputs = batch()
        for name, step in steps.items():
            started = time.perf_counter()
            losses[name].append(step(*inputs))
            times[name].append(time.perf_counter() - started)
    eager_s, compiled_s = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print(json.dumps({
        "command": "PYTHONPATH=. python " + " ".join(["benchmarks/compile_step.py", *sys.argv[1:]]),
        "torch": torch.__version__, "threads": args.threads, "batch": config.data.batch_size,
        "img_size": [height, width], "measured_steps": args.steps,
        "first_compiled_step_s": round(compile_s, 2),
        "eager_step_s": round(eager_s, 4), "compiled_step_s": round(compiled_s, 4),
        "eager_over_compiled": round(eager_s / compiled_s, 3),
        "max_loss_difference": max(abs(a - b) for a, b in zip(losses["eager"], losses["compiled"])),
        "load_average_before": load_before, "load_average_after": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
