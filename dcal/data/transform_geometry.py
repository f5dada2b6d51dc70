"""Where a model-input pixel lies in the image: the geometry of dcal's test transforms.

The test transform (:func:`dcal.data.transforms.build_transforms`) resizes the image to a fixed
``(height, width)`` and, for FGVC, centre-crops it; nothing else moves pixels.  So model-input pixel
``(x, y)`` is image pixel ``scale * ((x, y) + crop offset)``, with ``scale`` the image size over the
resized size and the crop offset torchvision's ``CenterCrop`` edge.  Continuous coordinates, with the
origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from torchvision import transforms as T

from dcal.errors import LocalizationError


@dataclass(frozen=True)
class InputView:
    """The affine map from model-input pixels ``(x, y)`` to image pixels: ``scale * (x, y) + offset``.

    ``input_size`` is the model input's ``(width, height)``; ``image_size`` the image's as loaded.
    """

    image_size: tuple
    input_size: tuple
    scale: tuple
    offset: tuple

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * np.array(self.scale) + np.array(self.offset)

    @property
    def box(self) -> tuple:
        """The region of the image the input shows, ``(left, top, right, bottom)`` in image pixels."""
        (left, top), (right, bottom) = self.to_image(np.array([[0.0, 0.0], list(self.input_size)]))
        return (float(left), float(top), float(right), float(bottom))


def input_view(image_size: Sequence[int], resize: Sequence[int], crop: Optional[Sequence[int]] = None) -> InputView:
    """The :class:`InputView` of an image of ``image_size = (width, height)`` resized to
    ``resize = (height, width)`` and then centre-cropped to ``crop = (height, width)`` (no crop: ``None``)."""
    width, height = int(image_size[0]), int(image_size[1])
    resize_h, resize_w = int(resize[0]), int(resize[1])
    crop_h, crop_w = (int(crop[0]), int(crop[1])) if crop is not None else (resize_h, resize_w)
    scale_x, scale_y = width / resize_w, height / resize_h
    left, top = int(round((resize_w - crop_w) / 2.0)), int(round((resize_h - crop_h) / 2.0))  # as CenterCrop
    return InputView(image_size=(width, height), input_size=(crop_w, crop_h), scale=(scale_x, scale_y),
                     offset=(scale_x * left, scale_y * top))


def transform_sizes(transform) -> tuple:
    """``(resize, crop)`` of a test transform as :func:`~dcal.data.transforms.build_transforms` builds
    it: the ``Resize`` to a fixed ``(height, width)`` and the ``CenterCrop`` size (``None`` without one).

    Raises :class:`~dcal.errors.LocalizationError` naming any other step that moves pixels.
    """
    resize = crop = None
    for step in getattr(transform, "transforms", [transform]):
        if isinstance(step, T.Resize) and resize is None and crop is None and _is_pair(step.size):
            resize = tuple(int(v) for v in step.size)
        elif isinstance(step, T.CenterCrop) and resize is not None and crop is None:
            crop = tuple(int(v) for v in step.size)
        elif not isinstance(step, (T.ToTensor, T.Normalize)):
            raise LocalizationError(f"cannot map model-input pixels back to the image through {step!r}: dcal's test "
                              "transform is a Resize to (height, width), an optional CenterCrop, ToTensor, Normalize")
    if resize is None:
        raise LocalizationError(f"{transform!r} has no Resize to (height, width), as dcal's test transform has")
    return resize, crop


def _is_pair(size) -> bool:
    return isinstance(size, (tuple, list)) and len(size) == 2


def patch_centres(grid_size: Sequence[int], input_size: Sequence[int]) -> np.ndarray:
    """Centres ``(x, y)`` in model-input pixels of the ``grid_size = (rows, cols)`` patches, row-major, shape (N, 2)."""
    rows, cols = int(grid_size[0]), int(grid_size[1])
    width, height = float(input_size[0]), float(input_size[1])
    ys, xs = np.meshgrid((np.arange(rows) + 0.5) * height / rows, (np.arange(cols) + 0.5) * width / cols, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)
