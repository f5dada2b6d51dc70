"""Start a run from a DCAL model trained on another dataset (``model.init_from``).

The file is a dcal checkpoint (``.pt``, its EMA weights when it has them) or the ``.safetensors``
that ``train.save_safetensors`` writes.  Every tensor of the new model is taken from it — the
backbone, the GLCA block (Sec. 3.2), the norms, the BNNecks' BatchNorms — except:

- the heads' tensors whose shape differs (a classifier over another number of classes or
  identities) or that the file lacks (an FGVC file for a Re-ID model): they keep their fresh
  initialisation and are listed as re-initialised;
- absolute position embeddings of another patch grid (another input size): resampled with timm's
  ``resample_abs_pos_embed`` (bicubic), as pretrained backbones are (:mod:`dcal.model.pretrained`).

Any other missing or mis-shaped tensor (another backbone, ``model.glca`` on for a file without
GLCA), or a tensor that is not floating point where the model's is, raises
:class:`~dcal.errors.CheckpointError` naming the keys; tensors of another floating precision are
converted and listed (:mod:`dcal.model.weight_dtypes`).  Tensors of the file the model
has no place for (GLCA weights for a model without GLCA) are listed as unused.  This is not
``--resume``: the optimiser, schedule and epoch start afresh.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dcal.engine.checkpoint import read_checkpoint
from dcal.engine.train_state import inference_weights
from dcal.errors import CheckpointError
from dcal.model.heads import head_prefixes
from dcal.model.weight_dtypes import fit_dtypes, key_names

POS_EMBED_KEY = "backbone.pos_embed"


@dataclass
class InitReport:
    """What :func:`init_from` did, key by key."""

    path: Path
    source: str  # "EMA weights" or "weights"
    loaded: list = field(default_factory=list)
    reinitialised: list = field(default_factory=list)  # "key (file shape, model shape)" or "key (not in the file)"
    resampled: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    converted: list = field(default_factory=list)  # "key float16 -> float32"

    def summary(self) -> str:
        """One line per kind of key, as printed at the start of the run."""
        groups = Counter(key.split(".")[0] for key in self.loaded)
        lines = [f"model.init_from {self.path} ({self.source}): loaded {len(self.loaded)} tensors ("
                 + ", ".join(f"{name} {count}" for name, count in groups.items()) + ")"]
        if self.resampled:
            lines.append(f"  resampled: {key_names(self.resampled)}")
        lines.append(f"  re-initialised: {key_names(self.reinitialised) if self.reinitialised else 'none'}")
        if self.converted:
            lines.append(f"  converted to the model's dtype: {key_names(self.converted)}")
        if self.unused:
            lines.append(f"  unused from the file: {key_names(self.unused)}")
        return "\n".join(lines)


def read_trained_weights(path) -> tuple[dict, dict | None, str]:
    """``(state_dict, config dict or None, what)`` of a dcal checkpoint or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model.init_from: {path} not found (expected a dcal checkpoint .pt or .safetensors)")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
                state = {key: file.get_tensor(key) for key in file.keys()}
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"model.init_from: cannot read {path} ({error})") from None
        config = json.loads(metadata["config"]) if "config" in metadata else None
        return state, config, "weights"
    checkpoint = read_checkpoint(path)
    weights, what = inference_weights(checkpoint, path)
    return weights, checkpoint.get("config"), what


def init_from(model: torch.nn.Module, path) -> InitReport:
    """Load the dcal model at ``path`` into ``model`` as the module docstring says; returns the report."""
    path = Path(path)
    state, file_config, source = read_trained_weights(path)
    target = model.state_dict()
    heads = head_prefixes(model)
    report = InitReport(path, source)
    state, report.converted = fit_dtypes(target, state, f"model.init_from: {path}")
    fitting, problems = {}, []
    for key, expected in target.items():
        value = state.get(key)
        if value is not None and value.shape == expected.shape:
            fitting[key] = value
            report.loaded.append(key)
        elif key.startswith(heads):
            report.reinitialised.append(f"{key} ({'not in the file' if value is None else f'file {tuple(value.shape)}, model {tuple(expected.shape)}'})")
        elif value is not None and key == POS_EMBED_KEY:
            fitting[key] = _resample_pos_embed(model, value, file_config, path)
            report.loaded.append(key)
            report.resampled.append(f"{key} {tuple(value.shape)} -> {tuple(expected.shape)}")
        elif value is None:
            problems.append(f"{key} (not in the file)")
        else:
            problems.append(f"{key} (file {tuple(value.shape)}, model {tuple(expected.shape)})")
    if problems:
        raise CheckpointError(f"model.init_from: {path} does not fit the model beyond its heads — "
                              f"{key_names(problems)}; it was trained with another backbone or model settings")
    report.unused = sorted(key for key in state if key not in target)
    model.load_state_dict(fitting, strict=False)
    return report


def _resample_pos_embed(model, value: torch.Tensor, file_config: dict | None, path: Path) -> torch.Tensor:
    """The file's position embedding resampled to ``model``'s patch grid."""
    from timm.layers import resample_abs_pos_embed

    backbone = model.backbone
    prefix = 0 if getattr(backbone, "no_embed_class", False) else backbone.num_prefix_tokens
    patches = value.shape[1] - prefix
    patch = backbone.patch_embed.patch_size
    old = None
    if file_config is not None:
        height, width = file_config["data"]["img_size"]
        old = (height // patch[0], width // patch[1])
    if old is None or old[0] * old[1] != patches:
        side = math.isqrt(patches)
        if side * side != patches:
            raise CheckpointError(f"model.init_from: {path}: cannot tell the patch grid of its position embedding "
                                  f"({patches} patches); train the new model at the same data.img_size")
        old = (side, side)
    return resample_abs_pos_embed(value, new_size=list(model.grid_size), old_size=list(old),
                                  num_prefix_tokens=prefix, interpolation="bicubic", antialias=True)
