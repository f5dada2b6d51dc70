"""A checkpoint made ready for inference: the model, its config, class names and test transform.

``dcal eval`` and its siblings — ``visualize``, ``predict``, ``extract``, ``search`` and
``export`` — start here:

- :func:`load_trained` rebuilds the model from a checkpoint alone (:func:`model_from_checkpoint`),
  in eval mode (PWCA is not run at inference), and checks that the checkpoint is of the task the
  command needs, naming the file otherwise.
- :meth:`TrainedModel.branches` runs the model on PIL images and returns per image what the
  figures need: the inference scores, the rollout over the patch grid and GLCA's selection.

Reading the images a user names is :mod:`dcal.data.image_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from dcal.config import Config, apply_overrides
from dcal.data.transforms import eval_transform
from dcal.engine.checkpoint import check_compatible, checkpoint_config, load_weights, read_checkpoint
from dcal.engine.distributed import resolve_device
from dcal.engine.model_setup import build_model
from dcal.engine.train_state import inference_weights
from dcal.errors import CheckpointError
from dcal.model.inference import fgvc_scores


@dataclass
class TrainedModel:
    """A model rebuilt from ``path`` with what is needed to feed it and name its outputs."""

    model: torch.nn.Module
    config: Config
    class_names: Optional[list]
    path: Path
    device: torch.device
    num_classes: int  # classes (FGVC) or training identities (Re-ID) of the classifier
    epoch: Optional[int] = None  # the epoch the checkpoint was written in

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def transform(self):
        """The test-time transform of the checkpoint's config (resize, centre crop for FGVC)."""
        return eval_transform(self.config)

    @property
    def input_size(self) -> tuple:
        """The network input's ``(height, width)``."""
        return tuple(int(v) for v in self.config.data.img_size)

    @property
    def grid_size(self) -> tuple:
        """The patch grid ``(rows, cols)`` the rollout is defined on."""
        return tuple(int(v) for v in self.model.grid_size)

    def class_name(self, index: int) -> str:
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return f"class {index}"

    def require_task(self, task: str, purpose: str) -> None:
        """Raise :class:`CheckpointError` naming the checkpoint if it is not a ``task`` model."""
        if self.task != task:
            raise CheckpointError(f"{self.path} is a {self.task} checkpoint, but {purpose} needs a {task} checkpoint")

    @torch.no_grad()
    def batch(self, images: Sequence) -> torch.Tensor:
        """The transformed images as one batch on the model's device."""
        transform = self.transform
        return torch.stack([transform(image) for image in images]).to(self.device)

    @torch.no_grad()
    def branches(self, images: Sequence, batch_size: int = 32) -> list:
        """Per image a dict: ``rollout`` (rows x cols float array over the patch grid),
        ``selected`` (GLCA's patch indices, empty without GLCA) and, for FGVC, ``scores`` (the
        model's inference scores, softmax(SA) + softmax(GLCA): :func:`dcal.model.inference.fgvc_scores`)."""
        results = []
        for start in range(0, len(images), batch_size):
            out = self.model.forward_branches(self.batch(images[start : start + batch_size]))
            rollout = out["rollout"].float().cpu().numpy().reshape(-1, *self.grid_size)
            selected = out["selected"] if "glca" in out else None  # without GLCA nothing was selected
            scores = None
            if self.task == "fgvc":
                scores = fgvc_scores(out).cpu().numpy()
            for i in range(rollout.shape[0]):
                results.append(
                    {
                        "rollout": rollout[i],
                        "selected": selected[i].cpu().numpy() if selected is not None else np.zeros(0, dtype=np.int64),
                        "scores": scores[i] if scores is not None else None,
                    }
                )
        return results


def model_from_checkpoint(checkpoint: dict, path="checkpoint", *, config: Config | None = None, ema: bool | None = None):
    """Rebuild the model from a checkpoint dict read with :func:`~dcal.engine.checkpoint.read_checkpoint`
    and load its weights; returns ``(model, config)``, the model in eval mode on the CPU.

    ``config``: when given, it must describe the same architecture and task as the checkpoint
    (:func:`~dcal.engine.checkpoint.check_compatible`); its other settings (data root, evaluation
    options) are returned in place of the stored ones.  ``ema``: use the EMA weights (default: when
    the checkpoint has them).
    """
    trained = checkpoint_config(checkpoint, path)
    if config is not None:
        check_compatible(trained, config, path)
    model = build_model(trained, int(checkpoint["num_classes"]), pretrained=False)
    load_weights(model, inference_weights(checkpoint, path, ema)[0], path)
    return model.eval(), (config if config is not None else trained)


def load_trained(path, *, config: Optional[Config] = None, overrides: Sequence[str] = (), device: str = "auto",
                 task: Optional[str] = None, purpose: str = "this command", ema: bool | None = None) -> TrainedModel:
    """The model of checkpoint ``path`` in eval mode on ``device`` (its EMA weights when it has them,
    or as ``ema`` says); with ``task``, a checkpoint of another task raises :class:`CheckpointError`
    naming it and ``purpose``.

    ``config`` (optional) replaces the stored config and ``overrides`` (``key=value``) apply on top;
    the result must describe the same architecture (:func:`dcal.engine.checkpoint.check_compatible`),
    so only settings such as the data root or evaluation options can differ.  Its ``train.threads``
    sets torch's CPU threads, as in ``dcal train`` and ``dcal eval``.
    """
    path = Path(path)
    target = resolve_device(device)
    state = read_checkpoint(path)
    config = apply_overrides(config if config is not None else checkpoint_config(state, path), overrides)
    if config.train.threads > 0:  # as dcal train and dcal eval do
        torch.set_num_threads(config.train.threads)
    model, resolved = model_from_checkpoint(state, path, config=config, ema=ema)
    trained = TrainedModel(model.to(target).eval(), resolved, state.get("class_names"), path, target,
                           int(state["num_classes"]), state.get("epoch"))
    if task is not None:
        trained.require_task(task, purpose)
    return trained
