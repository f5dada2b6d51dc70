"""Features of a dataset split, with the labels, cameras and paths they belong to, as one ``.npz``.

What the feature is:

- Re-ID: the model's inference output — the concatenation of the SA and GLCA features, taken
  before their BNNecks (``neck_feat="before"``, the default) or after them (``"after"``),
  L2-normalised (paper §3.4), exactly what ``dcal eval`` ranks.  Shape (n, 2D) (n, D for a model
  without GLCA).
- FGVC: the concatenation of the SA and GLCA features that the classifiers read (after the final
  norms), not normalised, shape (n, 2D) (n, D without GLCA); the class scores are stored too.

:func:`feature_description` says which, for the model at hand, in the file's metadata.

The ``.npz`` file (``numpy.load(path)`` reads it; no pickle is involved) holds:

==================  ==========  ===============================================================
key                 dtype       content
==================  ==========  ===============================================================
``features``        float32     (n, d) as above
``labels``          int64       (n,) FGVC class index; Re-ID identity as the dataset writes it
``cameras``         int64       (n,) Re-ID camera index (0-based); -1 for FGVC
``paths``           str         (n,) image files
``scores``          float32     (n, C) FGVC only: softmax(SA) + softmax(GLCA) (:mod:`dcal.model.inference`)
``metadata``        str         0-d, JSON: task, split, dataset, checkpoint, checkpoint_sha256 (its
                                file's SHA-256: ``dcal search`` checks it), feature (what the
                                features are, :func:`feature_description`),
                                class_names (FGVC)
==================  ==========  ===============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from dcal.atomic_write import write_atomically
from dcal.errors import DCALError
from dcal.model.inference import fgvc_scores

def feature_description(model) -> str:
    """What :func:`batch_features` extracts from ``model`` (a DCAL model), in words."""
    branches = "concat(SA, GLCA)" if model.glca is not None else "SA"
    if model.task == "reid":
        return f"{branches} features {model.neck_feat} the BNNecks, L2-normalised (the model's inference output)"
    return f"{branches} features the classifiers read (after the final norms)"


@dataclass
class Features:
    """Features of ``n`` images with their labels, cameras, paths (and FGVC class scores)."""

    features: np.ndarray
    labels: np.ndarray
    cameras: np.ndarray
    paths: np.ndarray
    scores: Optional[np.ndarray] = None
    metadata: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        """Write the ``.npz`` described in the module docstring; ``path`` must end in ``.npz``.

        Written atomically (:mod:`dcal.atomic_write`): a full disk leaves no partial file."""
        path = Path(path)
        if path.suffix != ".npz":
            raise DCALError(f"--out {path}: features are written as a .npz file; give a path ending in .npz")
        arrays = {
            "features": self.features.astype(np.float32),
            "labels": self.labels.astype(np.int64),
            "cameras": self.cameras.astype(np.int64),
            "paths": np.asarray(self.paths, dtype=str),
            "metadata": np.asarray(json.dumps(self.metadata)),
        }
        if self.scores is not None:
            arrays["scores"] = self.scores.astype(np.float32)
        return write_atomically(path, lambda f: np.savez(f, **arrays), "features", DCALError)

    @classmethod
    def load(cls, path) -> "Features":
        with np.load(path) as data:
            return cls(
                features=data["features"],
                labels=data["labels"],
                cameras=data["cameras"],
                paths=data["paths"],
                scores=data["scores"] if "scores" in data else None,
                metadata=json.loads(str(data["metadata"])),
            )


@torch.no_grad()
def extract_features(model, dataset, *, batch_size: int = 64, num_workers: int = 0, metadata: Optional[dict] = None) -> Features:
    """The features of every image of ``dataset`` (an :class:`~dcal.data.image_dataset.ImageDataset`
    with the test transform), in record order, computed by ``model`` (a DCAL model) in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    task = model.task
    feats, scores = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        batch_feats, batch_scores = batch_features(model, batch["image"].to(device))
        feats.append(batch_feats)
        if batch_scores is not None:
            scores.append(batch_scores)
    records = dataset.records
    if task == "reid":
        labels = np.array([r.original_pid for r in records], dtype=np.int64)
        cameras = np.array([r.camid for r in records], dtype=np.int64)
    else:
        labels = np.array([r.label for r in records], dtype=np.int64)
        cameras = np.full(len(records), -1, dtype=np.int64)
    return Features(
        features=torch.cat(feats).numpy() if feats else np.zeros((0, 0), np.float32),
        labels=labels,
        cameras=cameras,
        paths=np.array([str(r.path) for r in records], dtype=str),
        scores=torch.cat(scores).numpy() if scores else None,
        metadata={"task": task, "feature": feature_description(model), **(metadata or {})},
    )


@torch.no_grad()
def batch_features(model, images: torch.Tensor):
    """``(features, scores)`` of one batch on the CPU, as described in the module docstring;
    ``scores`` is ``None`` for Re-ID.  ``model`` must be in eval mode."""
    if model.task == "reid":
        return model(images).float().cpu(), None
    out = model.forward_branches(images)
    feats = torch.cat([out[b]["feat"] for b in ("sa", "glca") if b in out], dim=1).float().cpu()
    return feats, fgvc_scores(out).cpu()
