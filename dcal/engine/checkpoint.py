"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts), so it loads with
``torch.load(weights_only=True)``.  Keys:

- ``model``: the model's state dict (the training weights); ``model_ema``: the EMA weights when
  ``train.ema`` is on (those are the weights evaluated, and :func:`model_from_checkpoint` prefers them);
- ``config``: the resolved configuration as a dict; ``task``; ``num_classes``; ``class_names``
  (a list, or None for Re-ID identities);
- the training state for an exact resume: ``optimizer``, ``scheduler``, ``criterion`` (the
  learnable loss weights), ``scaler``, ``rng`` (torch, numpy, python, CUDA), ``epoch`` (the epoch
  in progress), ``step_in_epoch`` (optimiser steps done in it), ``global_step``, ``best``, and
  ``metrics_records`` (lines of metrics.jsonl written so far).

Writes go to a temporary file in the same folder that is then renamed over the target
(``os.replace``), so a run killed at any moment leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from dcal.atomic_write import write_atomically
from dcal.config import Config, config_from_dict, config_value
from dcal.engine.model_setup import build_model
from dcal.errors import CheckpointError, ConfigError
from dcal.model.pretrained import load_fitting_state
from dcal.model.torch_files import load_torch_file

FORMAT = "dcal-checkpoint-v1"

# Settings that change the network's parameters: a checkpoint only fits a config that agrees on them.
ARCHITECTURE_KEYS = ("task", "model.backbone", "model.glca", "model.timm_kwargs", "data.img_size")


def save_checkpoint(state: dict, path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    write_atomically(path, lambda f: torch.save({"format": FORMAT, **state}, f), "checkpoint", CheckpointError)


def save_safetensors(state_dict: dict, path, metadata: dict) -> None:
    """Write weights as ``.safetensors`` (atomically), with ``metadata`` (the config as JSON, ...)."""
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    data = save(tensors, metadata={k: json.dumps(v) for k, v in metadata.items()})
    write_atomically(path, lambda f: f.write(data), "checkpoint", CheckpointError)


def read_checkpoint(path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU (``weights_only=True``)."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a dcal checkpoint (expected a dict with 'model' and 'config', found {keys}); "
            "checkpoints are written by `dcal train` to <run>/checkpoints/{last,best}.pt"
        )
    return state


def checkpoint_config(state: dict, path="checkpoint") -> Config:
    """The resolved :class:`Config` stored in a checkpoint."""
    try:
        return config_from_dict(state["config"], source=f"config stored in {path}")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None


def check_compatible(trained: Config, requested: Config, path="checkpoint") -> None:
    """Raise :class:`CheckpointError` naming every architecture setting on which the configs differ."""
    differences = []
    for key in ARCHITECTURE_KEYS:
        a, b = config_value(trained, key), config_value(requested, key)
        if a != b:
            differences.append(f"{key}: checkpoint has {a!r}, config asks for {b!r}")
    if differences:
        raise CheckpointError(f"{path} was trained with another architecture or task: " + "; ".join(differences))


def model_from_checkpoint(state: dict, path="checkpoint", *, config: Config | None = None, ema: bool | None = None):
    """Rebuild the model from a checkpoint dict read with :func:`read_checkpoint` and load its
    weights; returns ``(model, config)``, the model in eval mode on the CPU.

    ``config``: when given, it must describe the same architecture and task as the checkpoint
    (:func:`check_compatible`); its other settings (data root, evaluation options) are returned in
    place of the stored ones.  ``ema``: use the EMA weights (default: when the checkpoint has them).
    Commands that run a trained model use :func:`dcal.engine.trained_model.load_trained`, which
    reads the file, places the model on a device and checks its task.
    """
    trained = checkpoint_config(state, path)
    if config is not None:
        check_compatible(trained, config, path)
    model = build_model(trained, int(state["num_classes"]), pretrained=False)
    use_ema = ("model_ema" in state) if ema is None else ema
    if use_ema and "model_ema" not in state:
        raise CheckpointError(f"{path} holds no EMA weights (it was trained with train.ema=false)")
    load_weights(model, state["model_ema" if use_ema else "model"], path)
    return model.eval(), (config if config is not None else trained)


def restore_training_state(state: dict, path, *, model, criterion, optimizer, scheduler, scaler, ema=None) -> None:
    """Load a checkpoint's weights, loss weights, optimiser, schedule, grad scaler and EMA in place."""
    load_weights(model, state["model"], path)
    try:
        criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as error:  # e.g. parameter groups of another dcal version
        raise CheckpointError(
            f"{path}: its optimiser or loss state does not fit this run ({str(error).splitlines()[0]}); "
            "it was probably written by another dcal version. Start again with --overwrite, or start "
            "from its weights with model.init_from"
        ) from None
    if ema is not None:
        load_weights(ema.module, state["model_ema"], path)


def load_weights(model: torch.nn.Module, state_dict: dict, path="checkpoint") -> None:
    """``model.load_state_dict(state_dict)``, with a :class:`CheckpointError` naming the keys that differ."""
    load_fitting_state(model, state_dict, f"weights in {path} do not fit the model", source=f"weights in {path}")


def rng_state() -> dict:
    """The random states of torch, numpy and python as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
