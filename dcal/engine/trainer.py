"""The training loop: one function, read top to bottom (in the spirit of nanoGPT's ``train.py``).

:func:`train` builds the data, the model, the DCAL loss, the optimiser and the schedule from a
:class:`~dcal.config.Config`, then runs epochs of optimiser steps.  Each step runs
``train.accum_steps`` micro-batches through ``model.forward_branches`` (SA, GLCA and, with
distractors drawn from the micro-batch by ``train.pwca_distractor``, PWCA; Sec. 3), weighs the branch
losses by uncertainty (Sec. 3.4; a single branch is its plain loss), and updates the weights (AMP,
gradient clipping, optional EMA).  Each evaluation record of a multi-branch run also carries the
loss weights ``loss_weight_<branch>`` (``w_b``).  After
every epoch it writes ``checkpoints/last.pt``; every ``train.eval_every`` epochs it then evaluates,
appends to ``metrics.jsonl`` and writes ``last.pt`` again (and ``best.pt`` when the main metric
improves), so a failing evaluation loses no training.  With ``train.checkpoint_every`` it also
writes ``last.pt`` every N optimiser steps.  SIGINT and SIGTERM stop it after the step in progress,
with that step checkpointed (:mod:`dcal.engine.interrupts`); the run folder's rules (refusing to
overwrite a run, resume with changed settings) are :mod:`dcal.engine.run_folder`'s.

Exact resume: a checkpoint holds everything the rest of the run depends on — weights, optimiser,
schedule, loss weights, grad scaler, EMA, every process's random states, and the position in the
epoch.  Augmentation is seeded per ``(seed, epoch, index)``, the sampler's order per
``(seed, epoch)`` and the PWCA distractors per ``(seed, rank, micro-step)``, so a run killed at any
step and resumed reproduces an uninterrupted run bitwise on the CPU.

Under ``torchrun`` the model and the loss (whose weights are learnt) are wrapped together in
DistributedDataParallel, so both are averaged over processes.
"""

from __future__ import annotations

import random
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dcal.config import Config, save_config
from dcal.data.input_config import with_input_config
from dcal.engine import checkpoint as ckpt
from dcal.engine.data_setup import build_train_data, load_splits
from dcal.engine.seeding import mix_seed
from dcal.engine.distributed import DistributedContext, all_gather_objects, step_values, sum_over_processes
from dcal.engine import run_folder
from dcal.engine.evaluator import evaluate_epoch, evaluation_sets
from dcal.engine.interrupts import StopSignals, signal_name
from dcal.engine.losses import DCALLoss
from dcal.engine.model_setup import build_model, sync_batchnorm
from dcal.engine.optimizer import build_optimizer, build_scheduler
from dcal.engine.run_log import RunLog
from dcal.evaluation.report import format_metrics
from dcal.engine.run_summary import format_summary, run_summary, selection_metric, write_summary
from dcal.errors import TrainingDiverged
from dcal.model.pairing import distractor_index


class TrainStep(nn.Module):
    """Model and criterion as one module, so DDP averages the loss weights' gradients too."""

    def __init__(self, model: nn.Module, criterion: nn.Module):
        super().__init__()
        self.model, self.criterion = model, criterion

    def forward(self, images, targets, pair_index):
        outputs = self.model.forward_branches(images, pair_index=pair_index)
        return self.criterion(outputs, targets)


@dataclass
class TrainResult:
    """What a finished run leaves in memory: the trained model and loss, and the last evaluation."""

    model: nn.Module
    criterion: nn.Module
    metrics: dict | None


def train(config: Config, run_dir, *, resume: bool = False, context: DistributedContext = DistributedContext()) -> TrainResult:
    """Train as ``config`` says, writing the run folder ``run_dir``.

    ``resume``: continue from ``checkpoints/last.pt`` if there is one, with ``config`` (settings
    that differ from the checkpoint's are appended to ``config_changes.yaml``; ``dcal train``
    refuses those that change what the run computes unless ``--allow-changes``).  A resumed run
    that is already finished returns at once (``model`` and ``criterion`` None) without writing.
    SIGINT and SIGTERM stop after the optimiser step in progress with its checkpoint written
    (:class:`~dcal.engine.interrupts.TrainingInterrupted`).
    """
    config = with_input_config(config)  # the backbone's input statistics, stored in config.yaml and checkpoints
    with StopSignals() as stop:
        return _train(config, Path(run_dir), resume, context, stop)


def _train(config: Config, run_dir: Path, resume: bool, context: DistributedContext, stop: StopSignals) -> TrainResult:
    t, device = config.train, context.device
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    state = ckpt.read_checkpoint(last_path) if resume and last_path.is_file() else None
    if state is not None:
        trained_config = ckpt.checkpoint_config(state, last_path)
        ckpt.check_compatible(trained_config, config, last_path)
        if run_folder.read_progress(run_dir).finished(t.epochs):
            return TrainResult(None, None, state["metrics"])
    if context.is_main:
        run_folder.check_writable(run_dir)
        run_folder.remove_stale_temporaries(run_dir / "checkpoints")
    process_seed = mix_seed(t.seed, context.rank)
    torch.manual_seed(process_seed)
    np.random.seed(process_seed % 2**32)
    random.seed(process_seed)

    # Data: this process's share of the training set, and the full evaluation split(s).
    splits = load_splits(config) if context.is_main else None
    if context.distributed:  # rank 0 may have written the synthetic set; then every rank parses it
        torch.distributed.barrier()
        splits = splits or load_splits(config)
    data = build_train_data(config, context.rank, context.world_size, splits)
    eval_sets = evaluation_sets(config, splits, context)  # test, validation, eval.datasets
    steps_per_epoch = data.batches_per_epoch(0) // t.accum_steps

    # Model, loss with learnable weights, optimiser (no weight decay on norms, biases, tokens; the loss
    # weights in a group of their own).
    # A resumed run takes every weight from its checkpoint: no pretrained backbone, no model.init_from.
    model = sync_batchnorm(build_model(config, splits.num_classes, pretrained=False if state is not None else None),
                           config, context).to(device)
    criterion = DCALLoss.for_model(model, label_smoothing=config.loss.label_smoothing,
                                   triplet_margin=config.loss.triplet_margin).to(device)
    step_module = TrainStep(model, criterion)
    optimizer = build_optimizer(model, criterion, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=t.amp and device.type == "cuda")
    ema = None
    if t.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=t.ema_decay, use_warmup=True)
    trainable = [p for p in step_module.parameters() if p.requires_grad]

    epoch, step_in_epoch, global_step, best, records, last_metrics = 0, 0, 0, None, None, None
    pending_eval, saved_step = False, None  # pending_eval: the epoch just ended is checkpointed, not yet evaluated
    if state is not None:
        ckpt.restore_training_state(state, last_path, model=model, criterion=criterion, optimizer=optimizer,
                                    scheduler=scheduler, scaler=scaler, ema=ema)
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        best, records, last_metrics = state["best"], state["metrics_records"], state["metrics"]
        pending_eval, saved_step = state.get("pending_eval", False), global_step
    ddp = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None) \
        if context.distributed else step_module
    if t.compile:  # after DDP, as timm does; the modules themselves, and so every checkpoint, stay plain
        ddp = torch.compile(ddp)
    if state is not None and len(state["rng"]) == context.world_size:
        ckpt.set_rng_state(state["rng"][context.rank])

    log = RunLog(run_dir, enabled=context.is_main, keep_records=records, purge_step=global_step if state else None)
    if context.is_main:
        if not (run_dir / "config.yaml").exists():  # the configuration the run started with, kept
            save_config(config, run_dir / "config.yaml")
        if state is not None:
            run_folder.record_changes(run_dir, run_folder.config_differences(trained_config, config),
                                      step=global_step, epoch=epoch)
    resume_hint = f"dcal train --resume --out {shlex.quote(str(run_dir))}" + (" (under the same torchrun launch)" if context.distributed else "")

    def describe_stop(signum: int) -> str:
        where = f"{last_path} (optimiser step {saved_step})" if saved_step is not None else "no checkpoint yet"
        return f"interrupted by {signal_name(signum)}; the run folder's last checkpoint is {where}; resume with: {resume_hint}"

    stop.describe_stop = describe_stop

    def checkpoint_state() -> dict:
        """Everything needed to continue exactly from here (collective: every rank sends its RNG state)."""
        rng = all_gather_objects(ckpt.rng_state(), context)
        out = {
            "model": model.state_dict(), "config": config.to_dict(), "task": config.task,
            "num_classes": splits.num_classes, "class_names": splits.class_names,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "criterion": criterion.state_dict(), "scaler": scaler.state_dict(), "rng": rng,
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "best": best, "metrics_records": log.records, "metrics": last_metrics, "pending_eval": pending_eval,
        }
        if ema is not None:
            out["model_ema"] = ema.module.state_dict()
        return out

    def save(path) -> None:
        nonlocal saved_step
        state = checkpoint_state()
        if context.is_main:
            ckpt.save_checkpoint(state, path)
            if t.save_safetensors:
                weights = state["model_ema"] if ema is not None else state["model"]
                ckpt.save_safetensors(weights, Path(path).with_suffix(".safetensors"),
                                      {"config": state["config"], "num_classes": state["num_classes"],
                                       "class_names": state["class_names"]})
        if path == last_path:
            saved_step = global_step

    while epoch < t.epochs or pending_eval:
        if pending_eval:  # the epoch just ended is checkpointed: evaluate it, then checkpoint again
            with stop.abortable(not context.distributed):  # a signal now loses nothing: stop at once
                last_metrics = evaluate_epoch(ema.module if ema is not None else model, eval_sets, config, context,
                                              epoch, global_step, resume_hint)
            last_metrics.update(criterion.weight_values())  # w_b of a multi-branch run, as trained so far
            log.record(global_step, last_metrics)
            improved = best is None or last_metrics[selection_metric(config)] > best[selection_metric(config)]
            if improved:
                best = last_metrics
            pending_eval = False
            save(last_path)
            if improved:
                save(best_path)
            continue
        # One epoch of optimiser steps, starting after the steps a resumed checkpoint already did.
        steps = data.batches_per_epoch(epoch) // t.accum_steps
        loader = data.loader(epoch, step_in_epoch * t.accum_steps, config, context.rank,
                             pin_memory=device.type == "cuda")
        model.train()
        # A live bar on a terminal only; in a log file it would be thousands of redrawn lines.
        bar = tqdm(total=steps, initial=step_in_epoch, desc=f"epoch {epoch + 1}/{t.epochs}",
                   disable=not (context.is_main and sys.stderr.isatty()), dynamic_ncols=True, leave=False)
        epoch_started, epoch_steps, epoch_images, epoch_loss = time.perf_counter(), 0, 0, 0.0
        epoch_skipped = 0  # unreadable training images skipped (data.skip_corrupt)
        batches = iter(loader)
        while step_in_epoch < steps:
            started = time.perf_counter()
            images_seen, loss_sum = 0, torch.zeros((), device=device)
            for micro in range(t.accum_steps):
                batch = next(batches)
                epoch_skipped += len(batch["skipped"])
                images = batch["image"].to(device, non_blocking=True)
                targets = batch["target"].to(device, non_blocking=True)
                pair_index = None
                if model.pwca_blocks > 0:
                    generator = torch.Generator().manual_seed(mix_seed(t.seed, context.rank, global_step, micro))
                    pair_index = distractor_index(batch["target"], generator, t.pwca_distractor).to(device, non_blocking=True)
                sync = micro == t.accum_steps - 1 or not context.distributed
                with ddp.no_sync() if not sync else nullcontext():
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=t.amp):
                        loss, parts = ddp(images, targets, pair_index)
                    scaler.scale(loss / t.accum_steps).backward()
                loss_sum += loss.detach().float() / t.accum_steps  # a tensor: no host sync per micro-batch
                images_seen += len(images)
            logging = (global_step + 1) % t.log_every == 0
            loss_sum, finite, part_values = step_values(loss_sum, parts if logging else {}, context)
            if not finite:
                raise TrainingDiverged(
                    f"the loss became {loss_sum} at optimiser step {global_step + 1} (epoch {epoch + 1}, "
                    f"step {step_in_epoch + 1} of {steps}); stopped. "
                    + (f"The last checkpoint, from before it, is {last_path} (optimiser step {saved_step})"
                       if saved_step is not None else "No checkpoint was written yet")
                )
            if t.clip_grad is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, t.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            step_in_epoch += 1
            scheduler.step_update(global_step)
            if ema is not None:
                ema.update(model, step=global_step)

            throughput = images_seen * context.world_size / (time.perf_counter() - started)
            lr = optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{lr:.2e}", img_s=f"{throughput:.1f}")
            bar.update()
            epoch_steps, epoch_images, epoch_loss = epoch_steps + 1, epoch_images + images_seen, epoch_loss + loss_sum
            if global_step % t.log_every == 0:
                log.scalars(global_step, {"loss": loss_sum, "lr": lr, "images_per_s": throughput, **part_values}, "train")
            if t.checkpoint_every and global_step % t.checkpoint_every == 0:
                save(last_path)
            if stop.requested_everywhere(context, device):  # SIGINT / SIGTERM: checkpoint this step, stop
                if saved_step != global_step:
                    save(last_path)
                stop.stop()
        bar.close()
        del batches, loader
        if config.data.skip_corrupt:
            epoch_skipped = sum_over_processes(epoch_skipped, context, device)
        if context.is_main and epoch_steps:
            seconds = time.perf_counter() - epoch_started
            print(f"epoch {epoch + 1}/{t.epochs}  train loss {epoch_loss / epoch_steps:.4f}  "
                  f"lr {optimizer.param_groups[0]['lr']:.2e}  "
                  f"{epoch_images * context.world_size / seconds:.1f} img/s  {seconds:.1f} s"
                  + (f"  {epoch_skipped} unreadable images skipped" if config.data.skip_corrupt else ""), flush=True)

        # End of the epoch: checkpoint the start of the next one before evaluating (when due), so
        # a failing evaluation loses no training.
        epoch, step_in_epoch = epoch + 1, 0
        pending_eval = epoch % t.eval_every == 0 or epoch == t.epochs
        save(last_path)
    log.close()
    if context.is_main:
        summary = run_summary(config, last_metrics, best)
        write_summary(run_dir, summary)
        print(format_summary(summary, lambda m: format_metrics(config.task, m)), flush=True)
    return TrainResult(model, criterion, last_metrics)
