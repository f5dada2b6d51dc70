"""Where a training run is, and the checkpoint keys that carry it: the one module that names them.

A checkpoint (:mod:`dcal.engine.checkpoint` writes and reads the file) holds the model's identity —
``model`` (the training weights), ``config``, ``task``, ``num_classes``, ``class_names`` — and,
for an exact resume, the training state named here:

- ``model_ema``: the EMA weights when ``train.ema`` is on (those are evaluated, and a trained model
  is rebuilt from them: :func:`inference_weights`);
- ``optimizer``, ``scheduler``, ``criterion`` (the learnable loss weights ``w_b``, Sec. 3.4),
  ``scaler``, ``rng`` (every process's torch, numpy, python and CUDA random states);
- the :class:`TrainState`: ``epoch`` (the epoch in progress), ``step_in_epoch`` (optimiser steps
  done in it), ``global_step``, ``pending_eval`` (the epoch just ended is saved but not yet
  evaluated), ``best`` and ``metrics`` (the best and the last evaluation records) and
  ``metrics_records`` (the lines of ``metrics.jsonl`` written so far).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcal.engine.checkpoint import load_weights
from dcal.errors import CheckpointError


@dataclass
class TrainState:
    """How far a run got: what the loop advances and a checkpoint stores beside the weights."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    pending_eval: bool = False
    best: dict | None = None
    metrics: dict | None = None
    records: list | None = None  # None: metrics.jsonl is not known to the state (a new run)

    def finished(self, epochs: int) -> bool:
        """Every one of ``epochs`` epochs trained and evaluated: the one test of a finished run."""
        return self.epoch >= epochs and self.step_in_epoch == 0 and not self.pending_eval

    def describe(self, epochs: int) -> str:
        if self.step_in_epoch:
            return f"in epoch {self.epoch + 1} of {epochs}, optimiser step {self.global_step}"
        if self.pending_eval:
            return f"{self.epoch} of {epochs} epochs trained, the evaluation of epoch {self.epoch} not done"
        return f"{self.epoch} of {epochs} epochs done"

    def end_epoch(self, eval_every: int, epochs: int) -> None:
        """The epoch in progress is trained: the next one starts, after an evaluation when one is due."""
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.pending_eval = self.epoch % eval_every == 0 or self.epoch == epochs

    def evaluated(self, record: dict, selection_key: str) -> bool:
        """Take the evaluation ``record`` of the epoch just ended; True when it is the best so far."""
        improved = self.best is None or record[selection_key] > self.best[selection_key]
        self.metrics, self.pending_eval = record, False
        if improved:
            self.best = record
        return improved

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "pending_eval": self.pending_eval, "best": self.best, "metrics": self.metrics,
                "metrics_records": self.records}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path="checkpoint") -> "TrainState":
        """The state stored in ``checkpoint`` (a dict read from ``path``)."""
        try:
            return cls(int(checkpoint["epoch"]), int(checkpoint["step_in_epoch"]), int(checkpoint["global_step"]),
                       bool(checkpoint.get("pending_eval", False)), checkpoint.get("best"), checkpoint.get("metrics"),
                       checkpoint.get("metrics_records"))
        except (KeyError, TypeError, ValueError) as error:  # not a dcal checkpoint
            raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from None


@dataclass
class TrainingParts:
    """The objects whose state a checkpoint carries besides the weights (``ema``: timm's ``ModelEmaV3`` or None)."""

    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    ema: object = None


def training_checkpoint(parts: TrainingParts, state: TrainState, identity: dict, rng: list) -> dict:
    """The checkpoint of a run at ``state``: the model's ``identity`` (config, task, num_classes,
    class_names), its weights, the optimiser, schedule, loss weights, grad scaler, EMA, the random
    states ``rng`` of every process, and ``state``."""
    out = {"model": parts.model.state_dict(), **identity, "optimizer": parts.optimizer.state_dict(),
           "scheduler": parts.scheduler.state_dict(), "criterion": parts.criterion.state_dict(),
           "scaler": parts.scaler.state_dict(), "rng": rng, **state.state_dict()}
    if parts.ema is not None:
        out["model_ema"] = parts.ema.module.state_dict()
    return out


def restore_training_state(checkpoint: dict, path, *, model, criterion, optimizer, scheduler, scaler, ema=None) -> None:
    """Load a checkpoint's weights, loss weights, optimiser, schedule, grad scaler and EMA in place."""
    load_weights(model, checkpoint["model"], path)
    try:
        criterion.load_state_dict(checkpoint["criterion"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
    except (ValueError, KeyError, RuntimeError) as error:  # e.g. parameter groups of another dcal version
        raise CheckpointError(
            f"{path}: its optimiser or loss state does not fit this run ({str(error).splitlines()[0]}); "
            "it was probably written by another dcal version. Start again with --overwrite, or start "
            "from its weights with model.init_from"
        ) from None
    if ema is not None:
        load_weights(ema.module, checkpoint["model_ema"], path)


def process_rng(checkpoint: dict, rank: int, world_size: int):
    """The random states ``rank`` saved, or None when the checkpoint was written by another number of processes."""
    states = checkpoint["rng"]
    return states[rank] if len(states) == world_size else None


def inference_weights(checkpoint: dict, path="checkpoint", ema: bool | None = None) -> tuple[dict, str]:
    """``(state_dict, "EMA weights" | "weights")``: the weights a trained model is rebuilt from — the
    EMA weights when ``ema`` (default: when the checkpoint has them)."""
    use_ema = ("model_ema" in checkpoint) if ema is None else ema
    if use_ema and "model_ema" not in checkpoint:
        raise CheckpointError(f"{path} holds no EMA weights (it was trained with train.ema=false)")
    return (checkpoint["model_ema"], "EMA weights") if use_ema else (checkpoint["model"], "weights")
