"""Where the model looks, scored: the pointing game on images with a box around the true part.

DCAL selects GLCA's local queries by the class token's attention rollout (paper §3.2, Eq. 4), so the
rollout's maximum is the model's single "this is where it is" point.  The pointing game (Zhang et
al., ECCV 2016) counts an image as a hit when that point falls inside the annotated box; the score
is the share of hits.  On the synthetic FGVC set the box is the discriminative part itself, so the
score says directly whether the attention found what tells the classes apart.

Conventions: the rollout's maximum is taken at patch resolution (the first patch on ties) and the
patch's centre, mapped back through the test transform's resize and crop
(:mod:`dcal.data.transform_geometry`), is the point; a point on the box's edge counts as inside; no
tolerance margin.  The *chance level* reported next to the score is the share of patch centres
inside the box (what a uniformly random patch would score), averaged over images: a score only
means something above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from dcal.data.transform_geometry import InputView, input_view, patch_centres, transform_sizes
from dcal.errors import DatasetError, LocalizationError


def _inside(points: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Whether each ``(x, y)`` in ``points`` lies in the ``(x, y, w, h)`` box, edges included."""
    x, y, w, h = (float(v) for v in box)
    return (points[..., 0] >= x) & (points[..., 0] <= x + w) & (points[..., 1] >= y) & (points[..., 1] <= y + h)


def pointing_hits(rollout, grid_size: Sequence[int], views: Sequence[InputView], boxes: Sequence) -> tuple:
    """Score rollouts: ``(hits, chance)``, boolean and float arrays of length B.

    ``rollout`` (B, N) is the class token's rollout over the N = rows * cols patch tokens;
    ``views[b]`` maps image b's model input back to its pixels; ``boxes[b]`` is its ``(x, y, w, h)``.
    ``hits[b]``: the centre of the highest-rollout patch lies in the box.  ``chance[b]``: the share
    of patch centres in the box.
    """
    rollout = rollout.detach().cpu().numpy() if isinstance(rollout, torch.Tensor) else np.asarray(rollout)
    rows, cols = int(grid_size[0]), int(grid_size[1])
    if rollout.ndim != 2 or rollout.shape[1] != rows * cols:
        raise LocalizationError(f"rollout of shape {rollout.shape} does not cover a {rows}x{cols} patch grid")
    if not len(views) == len(boxes) == rollout.shape[0]:
        raise LocalizationError(f"{rollout.shape[0]} rollouts, {len(views)} views and {len(boxes)} boxes must match")
    hits = np.zeros(rollout.shape[0], dtype=bool)
    chance = np.zeros(rollout.shape[0], dtype=np.float64)
    for b, (view, box) in enumerate(zip(views, boxes)):
        inside = _inside(view.to_image(patch_centres((rows, cols), view.input_size)), box)
        hits[b] = inside[int(np.argmax(rollout[b]))]
        chance[b] = inside.mean()
    return hits, chance


@dataclass(frozen=True)
class PointingGameResult:
    """The pointing game over a set of images: ``score`` (share of hits), ``chance`` (mean share of
    patch centres in the box), ``hits`` (per image with a box, in record order) and ``count``."""

    score: float
    chance: float
    hits: np.ndarray
    count: int

    @classmethod
    def from_arrays(cls, hits, chance) -> "PointingGameResult":
        """Summarise per-image ``hits`` and ``chance`` as :func:`record_pointing` returns them
        (NaN for images without a box, which are left out)."""
        hits = torch.as_tensor(hits, dtype=torch.float64).numpy()
        chance = torch.as_tensor(chance, dtype=torch.float64).numpy()
        boxed = ~np.isnan(hits)
        if not boxed.any():
            raise LocalizationError("no image of the dataset has a box; the pointing game needs boxes")
        return cls(score=float(hits[boxed].mean()), chance=float(chance[boxed].mean()),
                   hits=hits[boxed].astype(bool), count=int(boxed.sum()))

    def as_dict(self) -> dict:
        return {"pointing_game": 100.0 * self.score, "pointing_game_chance": 100.0 * self.chance,
                "pointing_game_images": self.count}


def has_boxes(dataset) -> bool:
    return any(getattr(record, "bbox", None) is not None for record in dataset.records)


def _loaded_size(record) -> tuple:
    """``(width, height)`` of a record's image as :func:`dcal.data.image_dataset.load_record_image`
    returns it (FGVC-Aircraft's banner removed), read from the file header only."""
    try:
        with Image.open(record.path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError) as error:
        raise DatasetError(f"cannot read image {record.path}: {error}") from None
    return (width, height - getattr(record, "crop_bottom", 0))


def record_pointing(rollout, grid_size: Sequence[int], transform, records: Sequence) -> tuple:
    """``(hits, chance)`` float64 tensors of length B for a batch of ``records`` (NaN where a record
    has no box), given the model's ``rollout`` (B, N) on them under the test ``transform``.

    The per-batch step of the pointing game: an evaluation loop that already runs
    ``forward_branches`` calls it on each batch, gathers the results with its other columns and
    summarises them with :meth:`PointingGameResult.from_arrays`.
    """
    hits = torch.full((len(records),), float("nan"), dtype=torch.float64)
    chance = hits.clone()
    boxed = [i for i, record in enumerate(records) if getattr(record, "bbox", None) is not None]
    if boxed:
        resize, crop = transform_sizes(transform)
        views = [input_view(_loaded_size(records[i]), resize, crop) for i in boxed]
        rows = rollout[boxed] if isinstance(rollout, torch.Tensor) else np.asarray(rollout)[boxed]
        batch_hits, batch_chance = pointing_hits(rows, grid_size, views, [records[i].bbox for i in boxed])
        hits[boxed] = torch.from_numpy(batch_hits.astype(np.float64))
        chance[boxed] = torch.from_numpy(batch_chance)
    return hits, chance
