"""What a configuration file or override may say, checked when it is read, naming the key.

- :func:`key_hint`: for an unknown key, the close valid one, or else the valid keys of its section;
- :func:`coerce`: a YAML value as the field's annotated type, or an error naming the expected type;
- :func:`check_settings`: values that cannot work, on the settings as ``{dotted key: value}``
  (:func:`dcal.config.flat_settings`) — choices among fixed names (:data:`CHOICES`), ranges
  (:data:`VALUE_RULES`), image sizes that are ``[height, width]`` pairs and tile into whole
  patches of the backbone.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from typing import Any, Union

from dcal.errors import ConfigError
from dcal.evaluation.distances import METRICS
from dcal.model.dcal_model import TASKS
from dcal.model.glca import READOUTS
from dcal.model.inference import NECK_FEATS
from dcal.model.pairing import DISTRACTOR_RULES
from dcal.model.selection import SELECTIONS

#: The allowed values of each option among fixed names, defined beside the code that implements it.
CHOICES = {
    "task": TASKS,
    "model.glca_selection": SELECTIONS,
    "model.glca_readout": READOUTS,
    "model.neck_feat": NECK_FEATS,
    "train.device": ("auto", "cpu", "cuda"),
    "train.pwca_distractor": DISTRACTOR_RULES,
    "eval.metric": METRICS,
}

_finite = math.isfinite


def _paper_results(results) -> bool:
    """Whether ``paper.results`` maps backbones to the baseline's and DCAL's ``{metric: number}``."""
    return all(isinstance(row, dict) and set(row) <= {"baseline", "dcal"} and all(
        isinstance(figures, dict) and all(isinstance(v, (int, float)) for v in figures.values()) for figures in row.values())
        for row in results.values())

#: (key, test, what the value must be) for values that cannot work; None (a default) is not tested.
VALUE_RULES = (
    ("data.batch_size", lambda v: v >= 1, "at least 1"),
    ("data.num_instances", lambda v: v >= 1, "at least 1"),
    ("data.num_workers", lambda v: v >= 0, "0 or more"),
    ("data.padding", lambda v: v >= 0, "0 or more"),
    ("data.erasing_prob", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("optim.lr", lambda v: _finite(v) and v >= 0, "a finite number, 0 or more"),
    ("optim.lr_reference_batch", lambda v: v >= 1, "at least 1 (or null)"),
    ("optim.weight_decay", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train.epochs", lambda v: v >= 1, "at least 1"),
    ("train.warmup_epochs", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("train.warmup_lr", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("train.min_lr", lambda v: _finite(v) and v >= 0, "0 or more"),
    ("train.accum_steps", lambda v: v >= 1, "at least 1"),
    ("train.clip_grad", lambda v: _finite(v) and v > 0, "a positive number (or null: no clipping)"),
    ("train.ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train.threads", lambda v: v >= 0, "0 (torch's default) or more"),
    ("train.eval_every", lambda v: v >= 1, "at least 1"),
    ("train.checkpoint_every", lambda v: v >= 0, "0 (per epoch only) or more"),
    ("train.head_warmup_epochs", lambda v: v >= 0, "0 (off) or more"),
    ("train.log_every", lambda v: v >= 1, "at least 1"),
    ("model.glca_ratio", lambda v: 0 < v <= 1, "a share of the patch tokens in (0, 1] (or null: the paper's)"),
    ("model.pwca_blocks", lambda v: v >= 0, "0 (off) or more (or null: the paper's)"),
    ("model.drop_path_rate", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("loss.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("loss.weight_lr", lambda v: _finite(v) and v >= 0, "a finite number, 0 or more (or null: the network's)"),
    ("loss.triplet_margin", lambda v: _finite(v) and v >= 0, "0 or more (or null: soft margin)"),
    ("eval.batch_size", lambda v: v >= 1, "at least 1"),
    ("paper.results", _paper_results, "backbone: {baseline: {metric: number}, dcal: {metric: number}}"),
    ("slurm.nodes", lambda v: v >= 1, "at least 1"),
    ("slurm.gpus_per_node", lambda v: v >= 0, "0 (a CPU job) or more"),
    ("slurm.cpus_per_gpu", lambda v: v >= 1, "at least 1"),
    ("slurm.mem_gb", lambda v: _finite(v) and v > 0, "a positive number of GB (or null: the partition's default)"),
    ("slurm.time_min", lambda v: v >= 1, "at least 1 minute"),
)


def key_hint(key: str, valid: list) -> str:
    """``did you mean 'x'?`` when a valid key is close to ``key``, else the valid keys of its section
    (``valid``: every dotted key of the schema, sections included)."""
    top = [k for k in valid if "." not in k]
    section, dot, leaf = key.rpartition(".")
    if not dot:  # a top-level key
        close = difflib.get_close_matches(key, top, n=1, cutoff=0.6)
        return f"did you mean {close[0]!r}?" if close else f"valid top-level keys: {', '.join(top)}"
    sections = sorted({k.split(".")[0] for k in valid if "." in k})
    if section not in sections:
        close = difflib.get_close_matches(section, sections, n=1, cutoff=0.6)
        if not close:
            return f"{section!r} is not a section; the sections are {', '.join(sections)}"
        section = close[0]
    names = [k.split(".", 1)[1] for k in valid if k.startswith(section + ".")]
    close = difflib.get_close_matches(leaf, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {section + '.' + close[0]!r}?"
    return f"valid keys of section {section!r}: {', '.join(names)}"


def coerce(value, expected, key: str, source: str):
    """``value`` as the annotated type ``expected``, or a ConfigError naming ``key``."""
    origin = typing.get_origin(expected)
    if origin is Union:
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key, source)
            except ConfigError:
                continue
        raise _type_error(key, value, expected, source)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif expected is str:
        if isinstance(value, str):
            return value
    elif expected in (list, dict) or origin in (list, dict):
        if isinstance(value, (origin or expected)):
            return value
        if isinstance(value, tuple) and (origin or expected) is list:
            return list(value)
    elif expected is Any:
        return value
    raise _type_error(key, value, expected, source)


def _type_error(key, value, expected, source) -> ConfigError:
    name = getattr(expected, "__name__", None) or str(expected).replace("typing.", "")
    return ConfigError(f"{source}: config key {key!r} expects {name}, got {value!r} ({type(value).__name__})")


def check_settings(settings: dict) -> None:
    """Raise :class:`ConfigError` naming the first key whose value cannot work."""
    for key, options in CHOICES.items():
        if settings[key] not in options:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(options)}, got {settings[key]!r}")
    for key, test, expected in VALUE_RULES:
        value = settings.get(key)
        if value is not None and not test(value):
            raise ConfigError(f"config key {key!r} must be {expected}, got {value!r}")
    _check_sizes(settings)


def _is_size(value) -> bool:
    return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _check_sizes(settings: dict) -> None:
    """``[height, width]`` sizes, a resize no smaller than the FGVC crop, and an input that tiles
    into whole patches (the patch embedding would silently drop the rest)."""
    size, resize = settings["data.img_size"], settings["data.resize_size"]
    if not _is_size(size):
        raise ConfigError(f"config key 'data.img_size' expects [height, width] of positive ints, got {size!r}")
    if resize is not None:
        if not _is_size(resize):
            raise ConfigError(f"config key 'data.resize_size' expects [height, width] of positive ints (or null), got {resize!r}")
        if settings["task"] == "fgvc" and (resize[0] < size[0] or resize[1] < size[1]):
            raise ConfigError(f"config key 'data.resize_size' {resize} is smaller than the crop data.img_size {size}")
    timm_kwargs = settings["model.timm_kwargs"]
    patch, where = _patch_size(timm_kwargs, settings["model.backbone"])
    if patch is None or timm_kwargs.get("dynamic_img_pad"):
        return
    for side, length, p in zip(("height", "width"), size, patch):
        if length < p:
            raise ConfigError(f"config key 'data.img_size' {size}: the {side} {length} is smaller than one "
                              f"{p}-pixel patch ({where})")
        if length % p:
            raise ConfigError(f"config key 'data.img_size' {size}: the {side} {length} is not a multiple of the "
                              f"patch size {p} ({where}), so the last {length % p} pixels would be dropped; "
                              f"use {length - length % p} or {length - length % p + p}")


def _patch_size(timm_kwargs: dict, backbone: str) -> tuple:
    """The backbone's patch ``(height, width)`` and where it comes from, or ``(None, None)`` if unknown."""
    value = timm_kwargs.get("patch_size")
    if value is not None:
        where = "model.timm_kwargs.patch_size"
    else:
        match = re.search(r"patch(\d+)", backbone)
        if match is None:
            return None, None
        value, where = int(match.group(1)), f"of model.backbone {backbone}"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value, value), where
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value), where
    raise ConfigError(f"config key 'model.timm_kwargs' patch_size must be a positive int or [height, width], got {value!r}")
