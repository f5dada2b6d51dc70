"""The GPU check: what dcal does on one CUDA GPU, measured in one run of at most 13 minutes; prints JSON.

Run from the checkout, nothing to install::

    PYTHONPATH=. python benchmarks/gpu_check.py            # one CUDA GPU
    PYTHONPATH=. python benchmarks/gpu_check.py --smoke    # every part at tiny sizes on the CPU (CI)

Parts (each with its own time budget and its own ``try``: a part that fails or runs out of time
reports its error and what it measured so far, and the others still run):

* ``train_step``: DCAL (SA + GLCA + PWCA with T = 12, the uncertainty-weighted loss) against plain
  timm (cross-entropy), one AdamW step with fp16 autocast and a GradScaler: median step time and
  peak allocated GPU memory, for ViT-B/16 at 448² batch 16 (FGVC) and at 256×128 batch 64
  (Re-ID), with and without gradient checkpointing (``set_grad_checkpointing``).
* ``compiled_step``: the trainer's DCAL step (model and loss, as ``train.compile=true`` wraps
  them) eager against ``torch.compile`` at the same sizes: the first compiled step (compilation
  included), the median step times and ``eager_over_compiled`` (``--smoke``: dynamo's ``eager``
  backend, which traces without compiling kernels).
* ``inference``: the same models in eval mode under ``no_grad`` and fp16 autocast.
* ``dcal_train``: ``dcal train`` under ``torchrun --nproc_per_node=1`` on a synthetic image folder
  at 448² (ViT-B/16, AMP, pinned loader workers), 30 optimiser steps: the checkpoint written, its
  step count, the loss finite; plus one DDP step over an NCCL process group of one (gloo in
  ``--smoke``), which a one-process ``dcal train`` does not create.
* ``reid_eval``: :func:`dcal.evaluation.reid_metrics` at MSMT17 size (11,659 × 82,161, 1,536-d)
  on CUDA against the CPU (same mAP, mINP and CMC), time and peak GPU memory; k-reciprocal
  re-ranking on CUDA at MSMT17 size (time, peak memory) and, against the CPU, at Market-1501 size.

Times are medians of ``cuda.synchronize``-bounded steps after warm-up; peak memory is
``torch.cuda.max_memory_allocated`` over the measured steps (weights and optimiser state included).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import timm  # noqa: E402

import dcal  # noqa: E402
from dcal.engine.losses import DCALLoss  # noqa: E402
from dcal.engine.train_step import TrainStep  # noqa: E402
from dcal.model.pairing import distractor_index  # noqa: E402

FULL = {
    "backbone": "vit_base_patch16_224", "timm_kwargs": {},
    "fgvc": {"img_size": (448, 448), "batch": 16, "classes": 200},
    "reid": {"img_size": (256, 128), "batch": 64, "classes": 751, "instances": 4},
    "warmup": 3, "steps": 8,
    "train": {"img_size": 448, "resize": 512, "images_per_class": 40, "classes": 4, "batch": 16, "epochs": 3,
              "workers": 4},
    "reid_sizes": {"metrics": "msmt17", "rerank": "msmt17", "rerank_cpu": "market"},
    "compile_backend": "inductor",
    "budgets": {"train_step": 120, "inference": 40, "dcal_train": 120, "reid_eval": 170, "compiled_step": 300},
}
SMOKE = {
    "backbone": "vit_tiny_patch16_224",
    "timm_kwargs": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "fgvc": {"img_size": (64, 64), "batch": 4, "classes": 5},
    "reid": {"img_size": (64, 32), "batch": 8, "classes": 7, "instances": 4},
    "warmup": 1, "steps": 2,
    "train": {"img_size": 32, "resize": 36, "images_per_class": 6, "classes": 4, "batch": 8, "epochs": 1,
              "workers": 1},
    "reid_sizes": {"metrics": (60, 300, 20, 3, 10), "rerank": (40, 160, 16, 3, 0), "rerank_cpu": (40, 160, 16, 3, 0)},
    "compile_backend": "eager",  # dynamo's tracing without inductor's C++ compilation: seconds, not minutes
    "budgets": {"train_step": 60, "inference": 30, "dcal_train": 120, "reid_eval": 60, "compiled_step": 60},
}


class PartTimeout(Exception):
    pass


@contextmanager
def time_budget(seconds: float):
    """Raise :class:`PartTimeout` in this (main) thread after ``seconds``."""
    def expire(signum, frame):
        raise PartTimeout(f"ran past its budget of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device):
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def measure(step, device, warmup: int, steps: int) -> dict:
    """Median seconds of ``step()`` and the peak allocated memory over the measured steps."""
    for _ in range(warmup):
        step()
    reset_peak(device)
    times = []
    for _ in range(steps):
        sync(device)
        started = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - started)
    return {"seconds": round(statistics.median(times), 5), "peak_mib": peak_mib(device)}


def build(kind: str, task: str, cfg: dict, device):
    s = cfg[task]
    if kind == "timm":
        model = timm.create_model(cfg["backbone"], num_classes=s["classes"], img_size=s["img_size"], **cfg["timm_kwargs"])
    else:
        model = dcal.create_model(cfg["backbone"], s["classes"], task=task, img_size=s["img_size"], **cfg["timm_kwargs"])
    return model.to(device)


def batch_of(task: str, cfg: dict, device):
    s = cfg[task]
    x = torch.randn(s["batch"], 3, *s["img_size"], device=device)
    if task == "reid":
        y = torch.arange(s["batch"] // s["instances"]).repeat_interleave(s["instances"])
    else:
        y = torch.randint(0, s["classes"], (s["batch"],))
    return x, y.to(device)


def train_step_part(cfg, device, out: dict) -> None:
    amp = device.type == "cuda"
    for task in ("fgvc", "reid"):
        x, y = batch_of(task, cfg, device)
        pairs = distractor_index(y.cpu(), torch.Generator().manual_seed(0)).to(device)
        for checkpointing in (False, True):
            for kind in ("timm", "dcal"):
                key = f"{task}_{kind}" + ("_checkpointing" if checkpointing else "")
                model = build(kind, task, cfg, device).train()
                if checkpointing:
                    if not hasattr(model, "set_grad_checkpointing"):
                        out[key] = {"skipped": f"{type(model).__name__} has no set_grad_checkpointing"}
                        continue
                    model.set_grad_checkpointing(True)
                criterion = DCALLoss.for_model(model).to(device) if kind == "dcal" else None
                params = list(model.parameters()) + (list(criterion.parameters()) if criterion is not None else [])
                optimizer = torch.optim.AdamW(params, lr=1e-4)
                scaler = torch.amp.GradScaler("cuda", enabled=amp)

                def step():
                    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                        if kind == "dcal":
                            loss, _ = criterion(model.forward_branches(x, pair_index=pairs), y)
                        else:
                            loss = F.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)

                out[key] = measure(step, device, cfg["warmup"], cfg["steps"])
                del model, criterion, optimizer, params, scaler, step  # freed before the next one is measured
                gc.collect()
        for suffix in ("", "_checkpointing"):
            a, b = out.get(f"{task}_dcal{suffix}", {}), out.get(f"{task}_timm{suffix}", {})
            if "seconds" in a and "seconds" in b:
                out[f"{task}_dcal_over_timm{suffix}"] = {
                    "time": round(a["seconds"] / b["seconds"], 3),
                    "memory": round(a["peak_mib"] / b["peak_mib"], 3) if a["peak_mib"] else None,
                }
        a, b = out.get(f"{task}_dcal_checkpointing", {}), out.get(f"{task}_timm", {})
        if "peak_mib" in a and a["peak_mib"] and b.get("peak_mib"):
            out[f"{task}_dcal_checkpointing_memory_over_timm"] = round(a["peak_mib"] / b["peak_mib"], 3)


def compiled_step_part(cfg, device, out: dict) -> None:
    """The trainer's step (:class:`dcal.engine.train_step.TrainStep`, DCAL) eager against ``torch.compile``
    (``train.compile=true``): the first compiled step (compilation), median step times, their ratio."""
    amp = device.type == "cuda"
    backend = cfg["compile_backend"]
    for task in ("fgvc", "reid"):
        x, y = batch_of(task, cfg, device)
        pairs = distractor_index(y.cpu(), torch.Generator().manual_seed(0)).to(device)
        for compiled in (False, True):
            model = build("dcal", task, cfg, device).train()
            module = TrainStep(model, DCALLoss.for_model(model).to(device))
            forward = torch.compile(module, backend=backend) if compiled else module
            optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler("cuda", enabled=amp)

            def step():
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    loss, _ = forward(x, y, pairs)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)

            key = f"{task}_dcal" + ("_compiled" if compiled else "")
            sync(device)
            started = time.perf_counter()
            step()
            sync(device)
            first = round(time.perf_counter() - started, 2)
            out[key] = {**measure(step, device, cfg["warmup"], cfg["steps"]), "first_step_seconds": first}
            del model, module, forward, optimizer, scaler, step
            gc.collect()
        out[f"{task}_eager_over_compiled"] = round(out[f"{task}_dcal"]["seconds"] / out[f"{task}_dcal_compiled"]["seconds"], 3)
    out["backend"] = backend


def inference_part(cfg, device, out: dict) -> None:
    amp = device.type == "cuda"
    for task in ("fgvc", "reid"):
        x, _ = batch_of(task, cfg, device)
        for kind in ("timm", "dcal"):
            model = build(kind, task, cfg, device).eval()

            @torch.no_grad()
            def step():
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    model(x)

            out[f"{task}_{kind}"] = measure(step, device, cfg["warmup"], cfg["steps"])
            del model, step
            gc.collect()
        a, b = out[f"{task}_dcal"], out[f"{task}_timm"]
        out[f"{task}_dcal_over_timm"] = {
            "time": round(a["seconds"] / b["seconds"], 3),
            "memory": round(a["peak_mib"] / b["peak_mib"], 3) if a["peak_mib"] else None,
        }


def write_image_folder(root: Path, classes: int, per_class: int, size: int) -> None:
    """``train/`` and ``test/`` class folders of random images (each class its own mean colour)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", max(2, per_class // 4))):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.normal(60 + 40 * c, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=90)


def dcal_train_part(cfg, device, out: dict, budget: float) -> None:
    t = cfg["train"]
    try:
        out["ddp_one_process"] = ddp_one_process(device)
    except Exception as error:
        out["ddp_one_process"] = {"error": f"{type(error).__name__}: {error}"}
    with tempfile.TemporaryDirectory() as tmp:
        root, run = Path(tmp) / "data", Path(tmp) / "run"
        write_image_folder(root, t["classes"], t["images_per_class"], t["resize"])
        kwargs = "{" + ", ".join(f"{k}: {v}" for k, v in cfg["timm_kwargs"].items()) + "}"
        args = [f"model.backbone={cfg['backbone']}", f"model.timm_kwargs={kwargs}", "model.pwca_blocks=12",
                "data.dataset=image_folder", "data.synthetic=false", f"data.root={root}",
                f"data.img_size=[{t['img_size']}, {t['img_size']}]", f"data.resize_size=[{t['resize']}, {t['resize']}]",
                f"data.batch_size={t['batch']}", f"data.num_workers={t['workers']}", f"train.epochs={t['epochs']}",
                f"train.eval_every={t['epochs']}", "train.warmup_epochs=0.5", "train.amp=true", "train.log_every=1",
                f"train.threads={0 if device.type == 'cuda' else 1}", f"train.device={device.type}", "eval.batch_size=16"]
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                   "-m", "dcal.cli", "train", "--out", str(run), *args]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=max(10.0, budget - 20), env=env, cwd=REPO)
        out["seconds"] = round(time.perf_counter() - started, 1)
        out["returncode"] = result.returncode
        if result.returncode != 0:
            out["stderr_tail"] = result.stderr[-2000:]
            return
        state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        steps_per_epoch = t["classes"] * t["images_per_class"] // t["batch"]
        out["optimiser_steps"] = state["global_step"]
        out["expected_steps"] = steps_per_epoch * t["epochs"]
        out["checkpoint_written"] = True
        out["weights_finite"] = all(bool(torch.isfinite(v).all()) for v in state["model"].values() if v.is_floating_point())
        losses = [float(line.split("train loss")[1].split()[0]) for line in result.stdout.splitlines() if "train loss" in line]
        out["epoch_losses"] = losses
        out["loss_finite"] = bool(losses) and all(np.isfinite(losses))
        out["amp_scaler_scale"] = state["scaler"].get("scale") if state["scaler"] else None
        out["last_metrics"] = state.get("metrics")
        out["stdout_tail"] = result.stdout[-600:]
        out["ok"] = out["loss_finite"] and out["weights_finite"] and out["optimiser_steps"] == out["expected_steps"]


def ddp_one_process(device) -> dict:
    """One DDP step over a process group of one: NCCL on CUDA (gloo on the CPU), gradients all-reduced."""
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    with tempfile.NamedTemporaryFile() as store:
        dist.init_process_group(backend, init_method=f"file://{store.name}", rank=0, world_size=1)
        try:
            model = torch.nn.Linear(8, 4).to(device)
            ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index or 0] if device.type == "cuda" else None)
            ddp(torch.randn(5, 8, device=device)).sum().backward()
            flag = torch.ones(1, device=device)
            dist.all_reduce(flag)
            return {"backend": dist.get_backend(), "all_reduce": float(flag.item()),
                    "grad_finite": bool(torch.isfinite(model.weight.grad).all())}
        finally:
            dist.destroy_process_group()


def reid_eval_part(cfg, device, out: dict) -> None:
    from reid_eval import make_problem

    from dcal.evaluation import re_ranking_chunks, reid_metrics, reid_metrics_from_distances

    sizes = cfg["reid_sizes"]

    def timed(fn, on):
        reset_peak(on)
        sync(on)
        started = time.perf_counter()
        result = fn()
        sync(on)
        return result, round(time.perf_counter() - started, 2), peak_mib(on)

    def numbers(result):
        return {"mAP": result["mAP"], "mINP": result["mINP"], "rank1": float(result["cmc"][0]),
                "rank10": float(result["cmc"][9])}

    qf, gf, *labels = make_problem(sizes["metrics"], 3.0)
    out["metrics_size"] = [len(qf), len(gf)]
    gpu, seconds, peak = timed(lambda: reid_metrics(qf, gf, *labels, device=device), device)
    out["metrics_device"] = {**numbers(gpu), "seconds": seconds, "peak_mib": peak}
    cpu, seconds, _ = timed(lambda: reid_metrics(qf, gf, *labels), torch.device("cpu"))
    out["metrics_cpu"] = {**numbers(cpu), "seconds": seconds, "threads": torch.get_num_threads()}
    out["metrics_identical"] = numbers(gpu) == numbers(cpu) and bool(np.array_equal(gpu["cmc"], cpu["cmc"]))
    out["metrics_mAP_difference"] = abs(gpu["mAP"] - cpu["mAP"])
    del qf, gf

    def rerank(problem, on):
        qf, gf, *labels = problem
        return reid_metrics_from_distances(re_ranking_chunks(qf, gf, device=on), *labels, device=on)

    problem = make_problem(sizes["rerank_cpu"], 3.0)
    out["rerank_compare_size"] = [len(problem[0]), len(problem[1])]
    gpu, seconds, peak = timed(lambda: rerank(problem, device), device)
    out["rerank_compare_device"] = {**numbers(gpu), "seconds": seconds, "peak_mib": peak}
    cpu, seconds, _ = timed(lambda: rerank(problem, torch.device("cpu")), torch.device("cpu"))
    out["rerank_compare_cpu"] = {**numbers(cpu), "seconds": seconds}
    out["rerank_identical"] = numbers(gpu) == numbers(cpu)
    out["rerank_mAP_difference"] = abs(gpu["mAP"] - cpu["mAP"])
    problem = make_problem(sizes["rerank"], 3.0)  # the largest, last: a timeout here loses nothing else
    out["rerank_size"] = [len(problem[0]), len(problem[1])]
    gpu, seconds, peak = timed(lambda: rerank(problem, device), device)
    out["rerank_device"] = {**numbers(gpu), "seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every part at tiny sizes on the CPU (CI)")
    parser.add_argument("--parts", nargs="+",
                        default=["train_step", "inference", "dcal_train", "reid_eval", "compiled_step"],
                        help="the parts to run (default: all)")
    args = parser.parse_args()
    cfg = SMOKE if args.smoke else FULL
    if not args.smoke and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device: run with --smoke on the CPU"}))
        sys.exit(1)
    device = torch.device("cpu") if args.smoke else torch.device("cuda", 0)
    if args.smoke:
        torch.set_num_threads(1)
    report = {
        "mode": "smoke" if args.smoke else "gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "timm": timm.__version__, "cuda": torch.version.cuda,
        "backbone": cfg["backbone"], "parts": {},
    }
    started = time.perf_counter()
    runners = {"train_step": train_step_part, "inference": inference_part, "reid_eval": reid_eval_part,
               "compiled_step": compiled_step_part,
               "dcal_train": lambda c, d, o: dcal_train_part(c, d, o, c["budgets"]["dcal_train"])}
    for name in args.parts:
        part, budget = {}, cfg["budgets"][name]
        report["parts"][name] = part
        part_started = time.perf_counter()
        try:
            with time_budget(budget):
                runners[name](cfg, device, part)
        except Exception as error:  # one failing part still lets the others report
            part["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            part["traceback_tail"] = traceback.format_exc()[-1500:]
        part["part_seconds"] = round(time.perf_counter() - part_started, 1)
        print(f"gpu_check: {name} done in {part['part_seconds']} s", file=sys.stderr, flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["failed_parts"] = [name for name, part in report["parts"].items() if "error" in part
                              or part.get("ok") is False]
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
