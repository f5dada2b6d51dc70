"""One optimiser step of DCAL training (Sec. 3).

The step runs ``train.accum_steps`` micro-batches through ``model.forward_branches`` — SA, GLCA and,
with distractors drawn from the micro-batch by ``train.pwca_distractor`` and seeded per
``(seed, rank, step, micro-batch)``, PWCA — weighs the branch losses by uncertainty (Sec. 3.4; a
single branch is its plain loss) and updates the weights: AMP, gradient clipping, the schedule,
the EMA.  In the first ``train.head_warmup_epochs`` epochs only the heads (classifiers, BNNecks) and
the loss weights are updated: the rest has no gradient, so the optimiser leaves it as it is
(no step, no weight decay, no momentum) — a linear probe on frozen features before fine-tuning.  A loss that is not finite on any process stops the run (:class:`~dcal.errors.TrainingDiverged`).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from dcal.engine.distributed import step_values
from dcal.engine.seeding import mix_seed
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
class StepResult:
    """What one optimiser step reports: the loss (mean over micro-batches and processes), the
    learning rate after it, this process's images and skipped images, the branch losses and
    weights (on logging steps) and the throughput over all processes."""

    loss: float
    lr: float
    images: int
    skipped: int
    parts: dict
    images_per_s: float


@dataclass
class EpochTally:
    """Sums over an epoch's steps, for the epoch's line."""

    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    images: int = 0
    skipped: int = 0  # unreadable training images skipped (data.skip_corrupt), on this process
    loss: float = 0.0

    def add(self, step: StepResult) -> None:
        self.steps, self.images, self.skipped = self.steps + 1, self.images + step.images, self.skipped + step.skipped
        self.loss += step.loss


def optimiser_step(run, batches, steps: int) -> StepResult:
    """One optimiser step of ``run`` (a :class:`~dcal.engine.training_run.TrainingRun`) on the next
    ``train.accum_steps`` micro-batches of ``batches``; advances ``run.state``."""
    t, context, parts, state = run.config.train, run.context, run.parts, run.state
    started = time.perf_counter()
    loss, images, skipped, branch_parts = _accumulate_gradients(run, batches)
    logging = (state.global_step + 1) % t.log_every == 0
    loss, finite, part_values = step_values(loss, branch_parts if logging else {}, context)
    if not finite:
        raise TrainingDiverged(
            f"the loss became {loss} at optimiser step {state.global_step + 1} (epoch {state.epoch + 1}, "
            f"step {state.step_in_epoch + 1} of {steps}); stopped. "
            + (f"The last checkpoint, from before it, is {run.last_path} (optimiser step {run.saved_step})"
               if run.saved_step is not None else "No checkpoint was written yet")
        )
    if state.epoch < t.head_warmup_epochs:  # the heads' warm start: everything else keeps its weights
        for p in run.body:
            p.grad = None
    if t.clip_grad is not None:
        parts.scaler.unscale_(parts.optimizer)
        torch.nn.utils.clip_grad_norm_(run.trainable, t.clip_grad)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.optimizer.zero_grad(set_to_none=True)
    state.global_step += 1
    state.step_in_epoch += 1
    parts.scheduler.step_update(state.global_step)
    if parts.ema is not None:
        parts.ema.update(parts.model, step=state.global_step)
    throughput = images * context.world_size / (time.perf_counter() - started)
    return StepResult(loss, parts.optimizer.param_groups[0]["lr"], images, skipped, part_values, throughput)


def _accumulate_gradients(run, batches) -> tuple[torch.Tensor, int, int, dict]:
    """Forward and backward passes of the step's micro-batches; gradients are synchronised over
    processes on the last one only.  Returns the mean loss (a tensor: no host sync per
    micro-batch), the images and skipped images of this process, and the last micro-batch's branch parts."""
    t, context, parts = run.config.train, run.context, run.parts
    device = context.device
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    loss_sum, images, skipped, branch_parts = torch.zeros((), device=device), 0, 0, {}
    for micro in range(t.accum_steps):
        batch = next(batches)
        skipped += len(batch["skipped"])
        inputs = batch["image"].to(device, non_blocking=True)
        targets = batch["target"].to(device, non_blocking=True)
        pair_index = None
        if parts.model.pwca_blocks > 0:
            generator = torch.Generator().manual_seed(mix_seed(t.seed, context.rank, run.state.global_step, micro))
            pair_index = distractor_index(batch["target"], generator, t.pwca_distractor).to(device, non_blocking=True)
        sync = micro == t.accum_steps - 1 or not context.distributed
        with run.forward.no_sync() if not sync else nullcontext():
            with torch.autocast(device.type, dtype=amp_dtype, enabled=t.amp):
                loss, branch_parts = run.forward(inputs, targets, pair_index)
            parts.scaler.scale(loss / t.accum_steps).backward()
        loss_sum += loss.detach().float() / t.accum_steps
        images += len(inputs)
    return loss_sum, images, skipped, branch_parts
