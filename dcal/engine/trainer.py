"""The training loop, read top to bottom (in the spirit of nanoGPT's ``train.py`` and DINO's).

:func:`train` builds the run from a :class:`~dcal.config.Config`
(:class:`~dcal.engine.training_run.TrainingRun`: data, model, DCAL loss, optimiser, schedule), then
trains an epoch, saves, evaluates when due, until every epoch is trained and evaluated.  Each
optimiser step runs ``train.accum_steps`` micro-batches through ``model.forward_branches`` (SA,
GLCA and, with distractors drawn from the micro-batch by ``train.pwca_distractor``, PWCA; Sec. 3),
weighs the branch losses by uncertainty (Sec. 3.4; a single branch is its plain loss), and updates
the weights (AMP, gradient clipping, optional EMA; :mod:`dcal.engine.train_step`).  Each
evaluation record of a multi-branch run also carries the loss weights ``loss_weight_<branch>``
(``w_b``).  After every epoch it writes ``checkpoints/last.pt``; every ``train.eval_every`` epochs
it then evaluates, appends to ``metrics.jsonl`` and writes ``last.pt`` again (and ``best.pt`` when
the main metric improves), so a failing evaluation loses no training.  With ``train.checkpoint_every`` it also
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

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from dcal.config import Config
from dcal.data.input_config import with_input_config
from dcal.engine import checkpoint as ckpt
from dcal.engine.distributed import DistributedContext
from dcal.engine.interrupts import StopSignals
from dcal.engine.run_folder import last_checkpoint
from dcal.engine.train_state import TrainState
from dcal.engine.training_run import TrainingRun


@dataclass
class TrainResult:
    """What a finished run leaves in memory: the trained model and loss, and the last evaluation."""

    model: nn.Module | None
    criterion: nn.Module | None
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
    run_dir, epochs = Path(run_dir), config.train.epochs
    checkpoint = resume_checkpoint(run_dir, config) if resume else None
    if checkpoint is not None:
        saved = TrainState.from_checkpoint(checkpoint, last_checkpoint(run_dir))
        if saved.finished(epochs):
            return TrainResult(None, None, saved.metrics)
    with StopSignals() as stop:
        run = TrainingRun(config, run_dir, context, checkpoint)
        stop.describe_stop = run.describe_stop
        while not run.state.finished(epochs):
            if run.state.pending_eval:  # the epoch just ended is saved: evaluate it, then save again
                run.evaluate(stop)
            else:
                run.train_epoch(stop)
        run.finish()
    return TrainResult(run.parts.model, run.parts.criterion, run.state.metrics)


def resume_checkpoint(run_dir: Path, config: Config) -> dict | None:
    """The run's ``last.pt`` (None when it has none), checked to fit ``config``'s architecture."""
    path = last_checkpoint(run_dir)
    if not path.is_file():
        return None
    checkpoint = ckpt.read_checkpoint(path)
    ckpt.check_compatible(ckpt.checkpoint_config(checkpoint, path), config, path)
    return checkpoint
