"""One process's training run, as an object: built once, then advanced an epoch or an evaluation at a time.

:class:`TrainingRun` builds, in this order (the order a resumed run repeats, so it draws the same
random numbers): the process's seeds, the training set and the evaluation sets, the model (a new
run's from ``model.pretrained`` or ``model.init_from``; a resumed run's from its checkpoint), the
DCAL loss with its learnable weights, the optimiser, the schedule, the grad scaler and the EMA; it
then restores a checkpoint's training state, wraps the model and loss in DDP (and ``torch.compile``)
and opens the run's records.  :meth:`TrainingRun.train_epoch` runs the epoch's remaining optimiser
steps (:mod:`dcal.engine.train_step`) and saves ``last.pt``; :meth:`TrainingRun.evaluate` scores
the epoch just ended, appends to ``metrics.jsonl`` and saves ``last.pt`` (and ``best.pt``).
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dcal.config import Config, save_config
from dcal.engine import checkpoint as ckpt
from dcal.engine import run_folder
from dcal.engine.data_setup import build_train_data, evaluation_sets, load_splits
from dcal.engine.distributed import DistributedContext, all_gather_objects, sum_over_processes
from dcal.engine.interrupts import StopSignals, signal_name
from dcal.engine.losses import DCALLoss
from dcal.engine.model_setup import build_model, new_run_model, sync_batchnorm
from dcal.engine.optimizer import build_optimizer, build_scheduler
from dcal.engine.periodic_evaluation import evaluate_epoch
from dcal.engine.run_log import RunLog
from dcal.engine.run_summary import format_summary, run_summary, selection_metric, write_summary
from dcal.engine.seeding import rng_state, seed_process, set_rng_state
from dcal.engine.train_state import (TrainingParts, TrainState, inference_weights, process_rng, restore_training_state,
                                     training_checkpoint)
from dcal.engine.train_step import EpochTally, TrainStep, optimiser_step
from dcal.evaluation.report import format_metrics
from dcal.model.heads import head_prefixes


def body_parameters(model: torch.nn.Module) -> list:
    """The parameters of ``model`` outside its heads (:func:`~dcal.model.heads.head_prefixes`): the
    backbone, GLCA and the norms."""
    heads = head_prefixes(model)
    return [p for name, p in model.named_parameters() if not name.startswith(heads)]


class TrainingRun:
    """The run in ``run_dir`` on this process; ``checkpoint``: the ``last.pt`` a resumed run continues from."""

    def __init__(self, config: Config, run_dir: Path, context: DistributedContext, checkpoint: dict | None = None):
        self.config, self.run_dir, self.context = config, run_dir, context
        self.last_path, self.best_path = run_folder.last_checkpoint(run_dir), run_dir / "checkpoints" / "best.pt"
        self.state = TrainState.from_checkpoint(checkpoint, self.last_path) if checkpoint else TrainState()
        self.saved_step = self.state.global_step if checkpoint else None  # the optimiser step last.pt holds
        if context.is_main:
            run_folder.check_writable(run_dir)
            run_folder.remove_stale_temporaries(run_dir / "checkpoints")
        seed_process(config.train.seed, context.rank)
        self.splits = self._load_splits()
        self.data = build_train_data(config, context.rank, context.world_size, self.splits)
        self.eval_sets = evaluation_sets(config, self.splits, context)  # test, validation, eval.datasets
        self.parts = self._build_parts(checkpoint)
        step_module = TrainStep(self.parts.model, self.parts.criterion)
        self.trainable = [p for p in step_module.parameters() if p.requires_grad]
        self.body = body_parameters(self.parts.model)  # frozen while train.head_warmup_epochs last
        self.forward = self._wrapped(step_module)
        rng = process_rng(checkpoint, context.rank, context.world_size) if checkpoint else None
        if rng is not None:
            set_rng_state(rng)
        self.log = RunLog(run_dir, enabled=context.is_main, keep_records=self.state.records,
                          purge_step=self.state.global_step if checkpoint else None)
        if context.is_main:
            self._record_start(checkpoint)

    def _load_splits(self):
        """The parsed dataset; with DDP, rank 0 parses first (it may write the synthetic set), then the others."""
        splits = load_splits(self.config) if self.context.is_main else None
        if self.context.distributed:
            torch.distributed.barrier()
            splits = splits or load_splits(self.config)
        return splits

    def _build_parts(self, checkpoint: dict | None) -> TrainingParts:
        """Model, loss with learnable weights, optimiser (no weight decay on norms, biases, tokens; the
        loss weights in a group of their own), schedule, grad scaler and EMA; a checkpoint's state restored."""
        config, device, num_classes = self.config, self.context.device, self.splits.num_classes
        t = config.train
        # A resumed run takes every weight from its checkpoint: no pretrained backbone, no model.init_from.
        model = build_model(config, num_classes, pretrained=False) if checkpoint \
            else new_run_model(config, num_classes, announce=self.context.is_main)
        model = sync_batchnorm(model, config, self.context).to(device)
        criterion = DCALLoss.for_model(model, label_smoothing=config.loss.label_smoothing,
                                       triplet_margin=config.loss.triplet_margin).to(device)
        optimizer = build_optimizer(model, criterion, config)
        steps_per_epoch = self.data.batches_per_epoch(0) // t.accum_steps
        parts = TrainingParts(model, criterion, optimizer, build_scheduler(optimizer, config, steps_per_epoch),
                              torch.amp.GradScaler("cuda", enabled=t.amp and device.type == "cuda"))
        if t.ema:
            from timm.utils import ModelEmaV3

            parts.ema = ModelEmaV3(model, decay=t.ema_decay, use_warmup=True)
        if checkpoint:
            restore_training_state(checkpoint, self.last_path, model=model, criterion=criterion, optimizer=optimizer,
                                   scheduler=parts.scheduler, scaler=parts.scaler, ema=parts.ema)
        return parts

    def _wrapped(self, step_module: TrainStep):
        """``step_module`` in DDP (model and loss together, so the loss weights are averaged too), then
        compiled with ``train.compile`` (after DDP, as timm does); the modules themselves stay plain."""
        device = self.context.device
        wrapped = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None) \
            if self.context.distributed else step_module
        return torch.compile(wrapped) if self.config.train.compile else wrapped

    def _record_start(self, checkpoint: dict | None) -> None:
        """``config.yaml`` for a new run; the changed settings a resume applied, in ``config_changes.yaml``."""
        if not (self.run_dir / "config.yaml").exists():  # the configuration the run started with, kept
            save_config(self.config, self.run_dir / "config.yaml")
        if checkpoint:
            trained = ckpt.checkpoint_config(checkpoint, self.last_path)
            run_folder.record_changes(self.run_dir, run_folder.config_differences(trained, self.config),
                                      step=self.state.global_step, epoch=self.state.epoch)

    @property
    def resume_hint(self) -> str:
        under = " (under the same torchrun launch)" if self.context.distributed else ""
        return f"dcal train --resume --out {shlex.quote(str(self.run_dir))}{under}"

    def describe_stop(self, signum: int) -> str:
        where = f"{self.last_path} (optimiser step {self.saved_step})" if self.saved_step is not None else "no checkpoint yet"
        return f"interrupted by {signal_name(signum)}; the run folder's last checkpoint is {where}; resume with: {self.resume_hint}"

    def save(self, *paths: Path) -> None:
        """Write the checkpoint of this moment to each of ``paths`` (collective: every rank sends its
        random state); the records it counts are the lines of ``metrics.jsonl`` written so far."""
        identity = {"config": self.config.to_dict(), "task": self.config.task, "num_classes": self.splits.num_classes,
                    "class_names": self.splits.class_names}
        self.state.records = self.log.records
        checkpoint = training_checkpoint(self.parts, self.state, identity, all_gather_objects(rng_state(), self.context))
        for path in paths:
            if self.context.is_main:
                ckpt.save_checkpoint(checkpoint, path)
                if self.config.train.save_safetensors:
                    ckpt.save_safetensors(inference_weights(checkpoint)[0], path.with_suffix(".safetensors"),
                                          {key: identity[key] for key in ("config", "num_classes", "class_names")})
            if path == self.last_path:
                self.saved_step = self.state.global_step

    def train_epoch(self, stop: StopSignals) -> None:
        """The epoch's optimiser steps from where it stands; then the next epoch's start is saved, so
        an evaluation that fails loses no training.  After a step, a SIGINT or SIGTERM that ``stop``
        caught on any process saves that step and stops the run."""
        t, context, state = self.config.train, self.context, self.state
        steps = self.data.batches_per_epoch(state.epoch) // t.accum_steps
        loader = self.data.loader(state.epoch, state.step_in_epoch * t.accum_steps, self.config, context.rank,
                                  pin_memory=context.device.type == "cuda")
        self.parts.model.train()
        # A live bar on a terminal only; in a log file it would be thousands of redrawn lines.
        bar = tqdm(total=steps, initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}/{t.epochs}",
                   disable=not (context.is_main and sys.stderr.isatty()), dynamic_ncols=True, leave=False)
        tally, batches = EpochTally(), iter(loader)
        while state.step_in_epoch < steps:
            step = optimiser_step(self, batches, steps)
            tally.add(step)
            bar.set_postfix(loss=f"{step.loss:.4f}", lr=f"{step.lr:.2e}", img_s=f"{step.images_per_s:.1f}")
            bar.update()
            if state.global_step % t.log_every == 0:
                self.log.scalars(state.global_step, {"loss": step.loss, "lr": step.lr, "images_per_s": step.images_per_s,
                                                     **step.parts}, "train")
            if t.checkpoint_every and state.global_step % t.checkpoint_every == 0:
                self.save(self.last_path)
            if stop.requested_everywhere(context, context.device):
                if self.saved_step != state.global_step:
                    self.save(self.last_path)
                stop.stop()
        bar.close()
        del batches, loader
        self._report_epoch(tally)
        state.end_epoch(t.eval_every, t.epochs)
        self.save(self.last_path)

    def _report_epoch(self, tally: "EpochTally") -> None:
        """The epoch's line: mean training loss, last learning rate, throughput (and unreadable images skipped)."""
        skip_corrupt, context = self.config.data.skip_corrupt, self.context
        skipped = sum_over_processes(tally.skipped, context, context.device) if skip_corrupt else 0
        if context.is_main and tally.steps:
            seconds = time.perf_counter() - tally.started
            print(f"epoch {self.state.epoch + 1}/{self.config.train.epochs}  train loss {tally.loss / tally.steps:.4f}  "
                  f"lr {self.parts.optimizer.param_groups[0]['lr']:.2e}  "
                  f"{tally.images * context.world_size / seconds:.1f} img/s  {seconds:.1f} s"
                  + (f"  {skipped} unreadable images skipped" if skip_corrupt else ""), flush=True)

    def evaluate(self, stop: StopSignals) -> None:
        """Score the epoch just ended (its end is saved already), record it, and save ``last.pt`` (and
        ``best.pt`` when the main metric improved)."""
        parts, state = self.parts, self.state
        with stop.abortable(not self.context.distributed):  # a signal now loses nothing: stop at once
            record = evaluate_epoch(parts.ema.module if parts.ema is not None else parts.model, self.eval_sets,
                                    self.config, self.context, state.epoch, state.global_step, self.resume_hint)
        record.update(parts.criterion.weight_values())  # w_b of a multi-branch run, as trained so far
        self.log.record(state.global_step, record)
        improved = state.evaluated(record, selection_metric(self.config))
        self.save(self.last_path, *((self.best_path,) if improved else ()))

    def finish(self) -> None:
        """Stop the loader's workers and close the records; the main process writes and prints the run's summary."""
        self.data.close()
        self.log.close()
        if self.context.is_main:
            summary = run_summary(self.config, self.state.metrics, self.state.best)
            write_summary(self.run_dir, summary)
            print(format_summary(summary, lambda m: format_metrics(self.config.task, m)), flush=True)
