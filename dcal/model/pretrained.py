"""Backbone weights from a local file: ``.safetensors``, ``.pth``/``.pt`` or big_vision ``.npz``.

Files are read without unpickling arbitrary objects (``safetensors``, ``torch.load(weights_only=True)``,
``numpy.load(allow_pickle=False)`` inside timm's npz loader) and adapted by timm's own filter
(``vision_transformer.checkpoint_filter_fn``): position embeddings are resampled to the model's
patch grid (bicubic, as timm does for its hub weights), patch-embedding kernels to its patch size,
and DeiT-III layer-scale names are mapped.  The ImageNet classifier (``head``, ``head_dist``) is
dropped: DCAL's heads are new.  Anything else that does not fit raises
:class:`~dcal.errors.CheckpointError` naming the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from dcal.errors import CheckpointError
from dcal.model.torch_files import load_torch_file
from dcal.model.weight_dtypes import fit_dtypes, key_names, warn_conversions

CLASSIFIER_PREFIXES = ("head.", "head_dist.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.pth``/``.pt`` file (a ``{"model": …}`` or
    ``{"state_dict": …}`` wrapper, as DeiT releases use, is unwrapped by timm's filter)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            return load_file(str(path))
        if suffix in (".pth", ".pt", ".bin"):
            state = load_torch_file(path, "weights file")
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(state).__name__}")
            return state
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: cannot read weights ({error})") from error
    raise CheckpointError(f"{path}: unknown weights format {suffix!r}; expected .safetensors, .pth, .pt or .npz")


def load_weights(vit: VisionTransformer, path: Union[str, os.PathLike]) -> None:
    """Load a weights file into ``vit`` (which has no classifier), resampling position embeddings."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix.lower() == ".npz":
        try:
            vit.load_pretrained(str(path))
        except (KeyError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{path}: not a big_vision/JAX ViT checkpoint of this architecture ({error})"
            ) from error
        return

    raw = read_state_dict(path)
    try:
        state = checkpoint_filter_fn(raw, vit, adapt_layer_scale=True)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: cannot adapt the weights to this model ({error})") from error
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}

    load_fitting_state(vit, state, f"{path} does not fit the backbone", source=f"backbone weights {path}")


def load_fitting_state(module: torch.nn.Module, state: dict, what: str, source: str) -> None:
    """``module.load_state_dict(state, strict=True)``, or a :class:`CheckpointError` that starts
    with ``what`` and names every missing, unexpected and mis-shaped key (a few of each), or one
    starting with ``source`` (the file) naming the tensors whose dtype would lose the values (:mod:`dcal.model.weight_dtypes`; tensors of another
    floating precision are converted, with a warning naming them)."""
    expected = module.state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys: {key_names(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {key_names(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches: {key_names(mismatched)}")
        raise CheckpointError(f"{what} — " + "; ".join(problems))
    state, converted = fit_dtypes(expected, state, source)
    module.load_state_dict(state, strict=True)
    warn_conversions(converted, source)
