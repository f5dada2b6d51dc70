"""Gradient checkpointing on the CPU: training peak memory and step time of DCAL and plain timm, each
with and without ``set_grad_checkpointing(True)``; prints JSON.

DeiT-Tiny architecture (random weights) at 224², batch 8, the same training steps as
``benchmarks/model_overhead.py`` (forward + loss + backward; DCAL: SA + GLCA + PWCA in every block
with the uncertainty-weighted loss), run interleaved; times are medians of ``--repeats`` rounds,
memory the median growth of the peak resident set during one step (``--memory-rounds`` rounds),
with glibc's malloc set to reuse freed memory (see ``model_overhead.py``).  DCAL with checkpointing
recomputes each block of its SA and PWCA streams, and the GLCA block, in the backward pass.

Target: with checkpointing, DCAL's training peak memory at most plain timm's without it
(``dcal_checkpointing_memory_over_timm`` ≤ 1).

Run: ``python benchmarks/grad_checkpointing.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_overhead import BACKBONE, dcal_train_step, run_interleaved, steady_allocator, timm_train_step  # noqa: E402

import dcal  # noqa: E402
from dcal.engine.losses import DCALLoss  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    args = parser.parse_args()
    steady_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = round(os.getloadavg()[0], 2)
    size, classes = (args.img_size, args.img_size), 200
    x, y = torch.randn(args.batch, 3, *size), torch.randint(0, classes, (args.batch,))
    steps = {}
    for checkpointing in (False, True):
        suffix = "_checkpointing" if checkpointing else ""
        plain = timm.create_model(BACKBONE, num_classes=classes, img_size=size).train()
        model = dcal.create_model(BACKBONE, classes, img_size=size).train()
        plain.set_grad_checkpointing(checkpointing)
        model.set_grad_checkpointing(checkpointing)
        steps["timm" + suffix] = timm_train_step(plain, x, y)
        steps["dcal" + suffix] = dcal_train_step(model, DCALLoss.for_model(model), x, y)
    results = run_interleaved(steps, args.warmup, args.repeats, args.memory_rounds)

    def ratio(a, b, key):
        return round(results[a][key] / results[b][key], 3)

    print(json.dumps({
        "backbone": f"{BACKBONE} (pretrained=False)", "img_size": list(size), "batch": args.batch,
        "threads": args.threads, "torch": torch.__version__, "timm": timm.__version__,
        "load_average_1min_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "results": {name: {k: round(v, 4) for k, v in r.items()} for name, r in results.items()},
        "dcal_checkpointing_memory_over_timm": ratio("dcal_checkpointing", "timm", "peak_mib"),
        "dcal_memory_over_timm": ratio("dcal", "timm", "peak_mib"),
        "dcal_checkpointing_memory_over_dcal": ratio("dcal_checkpointing", "dcal", "peak_mib"),
        "dcal_checkpointing_time_over_dcal": ratio("dcal_checkpointing", "dcal", "seconds"),
        "timm_checkpointing_memory_over_timm": ratio("timm_checkpointing", "timm", "peak_mib"),
        "timm_checkpointing_time_over_timm": ratio("timm_checkpointing", "timm", "seconds"),
        "target": "dcal_checkpointing_memory_over_timm <= 1",
    }, indent=2))


if __name__ == "__main__":
    main()
