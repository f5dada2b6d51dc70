"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts), so it loads with
``torch.load(weights_only=True)``.  It holds the model's identity — ``model`` (the training
weights), ``config`` (the resolved configuration as a dict), ``task``, ``num_classes``,
``class_names`` (a list, or None for Re-ID identities) — and the training state of an exact
resume, whose keys :mod:`dcal.engine.train_state` names.

Writes go to a temporary file in the same folder that is then renamed over the target
(``os.replace``), so a run killed at any moment leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save

from dcal.atomic_write import write_atomically
from dcal.config import Config, config_from_dict, config_value
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


def load_weights(model: torch.nn.Module, state_dict: dict, path="checkpoint") -> None:
    """``model.load_state_dict(state_dict)``, with a :class:`CheckpointError` naming the keys that differ."""
    load_fitting_state(model, state_dict, f"weights in {path} do not fit the model", source=f"weights in {path}")
