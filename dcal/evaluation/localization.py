"""Where the model looks, scored: the pointing game on images with a box around the true part.

DCAL selects GLCA's local queries by the class token's attention rollout (paper §3.2, Eq. 4), so the
rollout's maximum is the model's single "this is where it is" point.  The pointing game (Zhang et
al., ECCV 2016) counts an image as a hit when that point falls inside the annotated box; the score
is the share of hits.  On the synthetic FGVC set the box is the discriminative part itself, so the
score says directly whether the attention found what tells the classes apart.

The model sees the image through the eval transform (resize, centre crop), so a patch is mapped
back to the stored image's pixels before it is compared with the box:

- :func:`input_view` walks the transform (torchvision ``Resize``/``CenterCrop``, v1 or v2, and
  timm's ``ResizeKeepRatio``/``CenterCropOrPad``, mirroring their size and offset arithmetic) and
  returns the :class:`InputView`, an affine map from model-input pixels to image pixels.
- :func:`patch_centres` gives the centre of every patch of the grid in model-input pixels.
- :func:`pointing_hits` scores given rollouts; :func:`pointing_game` runs a model over records.

Conventions: the rollout's maximum is taken at patch resolution (the first patch on ties) and the
patch's centre is the point; a point on the box's edge counts as inside; no tolerance margin.  The
*chance level* reported next to the score is the share of patch centres inside the box (what a
uniformly random patch would score), averaged over images: a score only means something above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from dcal.errors import DatasetError, DCALError

# Transforms that leave pixel positions where they are (type conversions, normalisation).
POSITION_PRESERVING = {
    "ToTensor",
    "PILToTensor",
    "Normalize",
    "ConvertImageDtype",
    "ToImage",
    "ToDtype",
    "ToPureTensor",
    "MaybeToTensor",
    "MaybePILToTensor",
    "Grayscale",
    "ToNumpy",
}


class LocalizationError(DCALError):
    """The pointing game cannot be computed for this transform, model or data."""


@dataclass(frozen=True)
class InputView:
    """The affine map from model-input pixels ``(x, y)`` to image pixels: ``scale * (x, y) + offset``.

    ``input_size`` is the model input's ``(width, height)``; ``image_size`` the image's as loaded.
    Continuous coordinates with the origin at the top-left corner of the top-left pixel, so the
    input's full extent ``[0, width] x [0, height]`` maps onto :attr:`box`.
    """

    image_size: tuple
    input_size: tuple
    scale: tuple
    offset: tuple

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Image-pixel coordinates of ``points`` (..., 2) given as model-input ``(x, y)``."""
        return np.asarray(points, dtype=np.float64) * np.array(self.scale) + np.array(self.offset)

    @property
    def box(self) -> tuple:
        """The region of the image the input shows, ``(left, top, right, bottom)`` in image pixels."""
        (left, top), (right, bottom) = self.to_image(np.array([[0.0, 0.0], list(self.input_size)]))
        return (float(left), float(top), float(right), float(bottom))


def _resized_size(size, max_size, width: int, height: int) -> tuple:
    """``(width, height)`` after torchvision's ``Resize(size, max_size=...)`` (``_compute_resized_output_size``)."""
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1) or size is None:
        short, long = (width, height) if width <= height else (height, width)
        if size is None:
            new_short, new_long = int(max_size * short / long), max_size
        else:
            requested = size if isinstance(size, int) else size[0]
            new_short, new_long = requested, int(requested * long / short)
            if max_size is not None and new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_short, new_long) if width <= height else (new_long, new_short)
    return (int(size[1]), int(size[0]))


def _keep_ratio_size(transform, width: int, height: int) -> tuple:
    """``(width, height)`` after timm's ``ResizeKeepRatio`` in its deterministic (eval) form."""
    if transform.random_scale_prob > 0 or transform.random_aspect_prob > 0:
        raise LocalizationError(f"{transform!r} resizes at random; the pointing game needs the eval transform")
    target_h, target_w = transform.size
    ratio_h, ratio_w = height / target_h, width / target_w
    ratio = max(ratio_h, ratio_w) * transform.longest + min(ratio_h, ratio_w) * (1.0 - transform.longest)
    return (round(width / ratio), round(height / ratio))


def _crop_offset(size: int, crop: int) -> int:
    """Left (or top) edge of torchvision's centre crop in the uncropped image; negative when it pads."""
    if crop > size:
        return -((crop - size) // 2)
    return int(round((size - crop) / 2.0))


def _pair(size) -> tuple:
    """``(height, width)`` from an int or a one- or two-element sequence."""
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[-1]))


def input_view(transform, image_size: Sequence[int]) -> InputView:
    """The :class:`InputView` of an image of ``image_size`` = ``(width, height)`` under ``transform``.

    ``transform`` is a ``Compose`` (torchvision v1 or v2) or a single transform.  Raises
    :class:`LocalizationError` naming a transform that moves pixels in a way this does not model
    (random crops, flips, padding, rotations).
    """
    steps = getattr(transform, "transforms", [transform])
    width, height = int(image_size[0]), int(image_size[1])
    scale_x, scale_y, offset_x, offset_y = 1.0, 1.0, 0.0, 0.0
    for step in steps:
        name = type(step).__name__
        if name in POSITION_PRESERVING:
            continue
        if name == "Resize" or name == "ResizeKeepRatio":
            if name == "Resize":
                new_w, new_h = _resized_size(step.size, getattr(step, "max_size", None), width, height)
            else:
                new_w, new_h = _keep_ratio_size(step, width, height)
            scale_x, scale_y = scale_x * width / new_w, scale_y * height / new_h
            width, height = new_w, new_h
        elif name in ("CenterCrop", "CenterCropOrPad"):
            crop_h, crop_w = _pair(step.size)
            offset_x += scale_x * _crop_offset(width, crop_w)
            offset_y += scale_y * _crop_offset(height, crop_h)
            width, height = crop_w, crop_h
        else:
            raise LocalizationError(
                f"cannot map model-input pixels back to the image through {step!r}; "
                "supported: Resize, ResizeKeepRatio, CenterCrop, CenterCropOrPad and "
                f"position-preserving transforms ({', '.join(sorted(POSITION_PRESERVING))})"
            )
    return InputView(
        image_size=(int(image_size[0]), int(image_size[1])),
        input_size=(width, height),
        scale=(scale_x, scale_y),
        offset=(offset_x, offset_y),
    )


def patch_centres(grid_size: Sequence[int], input_size: Sequence[int]) -> np.ndarray:
    """Centres ``(x, y)`` in model-input pixels of the ``grid_size = (rows, cols)`` patches, row-major, shape (N, 2)."""
    rows, cols = int(grid_size[0]), int(grid_size[1])
    width, height = float(input_size[0]), float(input_size[1])
    ys, xs = np.meshgrid((np.arange(rows) + 0.5) * height / rows, (np.arange(cols) + 0.5) * width / cols, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


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
        centres = view.to_image(patch_centres((rows, cols), view.input_size))
        inside = _inside(centres, box)
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
        """Metrics keys: ``pointing_game`` and ``pointing_game_chance`` in percent, ``pointing_game_images``."""
        return {"pointing_game": 100.0 * self.score, "pointing_game_chance": 100.0 * self.chance,
                "pointing_game_images": self.count}


def has_boxes(dataset) -> bool:
    """Whether any record of ``dataset`` (an :class:`~dcal.data.image_dataset.ImageDataset`) has a box."""
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

    This is the per-batch step of :func:`pointing_game`; an evaluation loop that already runs
    ``forward_branches`` can call it on each batch and gather the results with the other columns.
    """
    hits = torch.full((len(records),), float("nan"), dtype=torch.float64)
    chance = hits.clone()
    boxed = [i for i, record in enumerate(records) if getattr(record, "bbox", None) is not None]
    if boxed:
        views = [input_view(transform, _loaded_size(records[i])) for i in boxed]
        rows = rollout[boxed] if isinstance(rollout, torch.Tensor) else np.asarray(rollout)[boxed]
        batch_hits, batch_chance = pointing_hits(rows, grid_size, views, [records[i].bbox for i in boxed])
        hits[boxed] = torch.from_numpy(batch_hits.astype(np.float64))
        chance[boxed] = torch.from_numpy(batch_chance)
    return hits, chance


@torch.no_grad()
def pointing_game(model, dataset, *, batch_size: int = 32, num_workers: int = 0, device=None) -> PointingGameResult:
    """The pointing game of ``model`` over the records of ``dataset`` that have a box.

    ``model`` is a DCAL model (its ``forward_branches`` gives ``rollout``; it has ``grid_size``);
    ``dataset`` an :class:`~dcal.data.image_dataset.ImageDataset` with the test transform, whose
    records carry ``bbox = (x, y, w, h)`` in image pixels.  Records without a box are left out;
    none with a box raises :class:`LocalizationError`.  Runs in one process; a distributed
    evaluation can instead call :func:`record_pointing` per batch.
    """
    from torch.utils.data import DataLoader, Subset

    indices = [i for i, record in enumerate(dataset.records) if getattr(record, "bbox", None) is not None]
    if not indices:
        raise LocalizationError("no image of the dataset has a box; the pointing game needs boxes")
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits, chance = [], []
    try:
        for batch in DataLoader(Subset(dataset, indices), batch_size=batch_size, num_workers=num_workers):
            records = [dataset.records[int(i)] for i in batch["index"]]
            rollout = model.forward_branches(batch["image"].to(device))["rollout"]
            batch_hits, batch_chance = record_pointing(rollout, model.grid_size, dataset.transform, records)
            hits.append(batch_hits)
            chance.append(batch_chance)
    finally:
        model.train(was_training)
    return PointingGameResult.from_arrays(torch.cat(hits), torch.cat(chance))
