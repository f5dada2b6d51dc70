"""The figure the paper shows (Fig. 1, Fig. 4): an image, the class token's attention rollout over
it, and the patches GLCA selected as its local queries (paper §3.2, Eq. 4) outlined.

- :func:`model_view` cuts the region of the image that the model saw (after the eval transform's
  resize and centre crop, see :class:`dcal.data.transform_geometry.InputView`) out of the full-
  resolution image, so the figure is sharp even for a small model input.
- :func:`attention_panel` draws ``[image | rollout heat map with the GLCA selection outlined]``.
- :func:`dcal.viz.figure_grid.grid` lays many panels out.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from dcal.data.transform_geometry import InputView, input_view, transform_sizes
from dcal.viz.colormap import heat_colors
from dcal.viz.figure_grid import with_caption

MIN_DISPLAY_SIDE = 256
OUTLINE = (0, 255, 255)


def display_size(input_size: Sequence[int], min_side: int = MIN_DISPLAY_SIDE) -> tuple:
    """The figure's tile size: the model input's ``(width, height)`` times the smallest integer that
    makes its longer side at least ``min_side`` (an integer factor keeps patches on whole pixels)."""
    factor = max(1, math.ceil(min_side / max(input_size)))
    return (int(input_size[0]) * factor, int(input_size[1]) * factor)


def model_view(image: Image.Image, view: InputView, size: Sequence[int]) -> Image.Image:
    """The part of ``image`` the model saw, resized to ``size``; area outside the image (a crop larger
    than the image pads) is black, as the transform pads it."""
    box = tuple(int(round(v)) for v in view.box)
    return image.convert("RGB").crop(box).resize(tuple(int(v) for v in size), Image.BICUBIC)


def heat_overlay(picture: Image.Image, rollout: np.ndarray, alpha: float = 0.6) -> Image.Image:
    """The heat map of ``rollout`` (rows, cols), min-max normalised and bilinearly upsampled to the
    picture's size, blended over a grey-scale copy of ``picture`` (colourful images would otherwise
    compete with the colour map)."""
    values = np.asarray(rollout, dtype=np.float32)
    span = float(values.max() - values.min())
    values = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    upsampled = np.asarray(Image.fromarray(values, mode="F").resize(picture.size, Image.BILINEAR))
    heat = heat_colors(upsampled).astype(np.float32)
    base = np.asarray(picture.convert("L").convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.rint((1.0 - alpha) * base + alpha * heat).astype(np.uint8))


def outline_patches(picture: Image.Image, grid_size: Sequence[int], selected: Sequence[int], width: int = 2) -> Image.Image:
    """``picture`` with the outline of the region made of the ``selected`` patches (row-major
    indices into the ``(rows, cols)`` grid) drawn: only edges between a selected and an unselected
    patch (or the border), so neighbouring patches form one shape."""
    rows, cols = int(grid_size[0]), int(grid_size[1])
    mask = np.zeros((rows + 2, cols + 2), dtype=bool)
    for index in selected:
        row, col = divmod(int(index), cols)
        mask[row + 1, col + 1] = True
    cell_w, cell_h = picture.width / cols, picture.height / rows
    picture = picture.copy()
    draw = ImageDraw.Draw(picture)
    for row, col in zip(*np.nonzero(mask[1:-1, 1:-1])):
        x0, y0, x1, y1 = col * cell_w, row * cell_h, (col + 1) * cell_w - 1, (row + 1) * cell_h - 1
        if not mask[row, col + 1]:
            draw.line([(x0, y0), (x1, y0)], fill=OUTLINE, width=width)
        if not mask[row + 2, col + 1]:
            draw.line([(x0, y1), (x1, y1)], fill=OUTLINE, width=width)
        if not mask[row + 1, col]:
            draw.line([(x0, y0), (x0, y1)], fill=OUTLINE, width=width)
        if not mask[row + 1, col + 2]:
            draw.line([(x1, y0), (x1, y1)], fill=OUTLINE, width=width)
    return picture


def attention_panel(
    picture: Image.Image,
    rollout: np.ndarray,
    grid_size: Sequence[int],
    selected: Sequence[int] = (),
    caption: Optional[str] = None,
    alpha: float = 0.6,
) -> Image.Image:
    """``[picture | rollout heat map over it with the selected patches outlined]``, captioned.

    ``picture`` is what the model saw (see :func:`model_view`); ``rollout`` holds one value per patch
    (N or rows x cols, row-major).  The panel is ``2 * picture.width`` wide and ``picture.height``
    high, plus :data:`dcal.viz.figure_grid.CAPTION_HEIGHT` when captioned.
    """
    rows, cols = int(grid_size[0]), int(grid_size[1])
    heat = outline_patches(heat_overlay(picture, np.asarray(rollout).reshape(rows, cols), alpha), (rows, cols), selected)
    panel = Image.new("RGB", (2 * picture.width, picture.height))
    panel.paste(picture.convert("RGB"), (0, 0))
    panel.paste(heat, (picture.width, 0))
    return with_caption(panel, caption)


def draw_box(picture: Image.Image, view: InputView, box: Sequence[float], color=(255, 255, 255), width: int = 2) -> Image.Image:
    """``picture`` (what :func:`model_view` returned for ``view``) with the image-pixel box
    ``(x, y, w, h)`` outlined where it falls in the picture."""
    corners = np.array([[box[0], box[1]], [box[0] + box[2], box[1] + box[3]]], dtype=np.float64)
    in_input = (corners - np.array(view.offset)) / np.array(view.scale)
    (x0, y0), (x1, y1) = in_input * np.array(picture.size) / np.array(view.input_size)
    picture = picture.copy()  # the outline lies just outside the box, so it hides nothing inside it
    ImageDraw.Draw(picture).rectangle([x0 - width, y0 - width, x1 + width - 1, y1 + width - 1], outline=color, width=width)
    return picture


def attention_figures(trained, images: Sequence[Image.Image], captions: Optional[Sequence[str]] = None,
                      boxes: Optional[Sequence] = None) -> list:
    """One :func:`attention_panel` per image for a :class:`~dcal.engine.trained_model.TrainedModel`.

    FGVC captions end with the predicted class and its score (softmax(SA) + softmax(GLCA), in [0, 2]);
    ``boxes[i]`` (``(x, y, w, h)`` in image pixels, or ``None``) is drawn in white on the left tile —
    the true part on the synthetic FGVC set, against which the pointing game scores the rollout.
    """
    resize, crop = transform_sizes(trained.transform)
    outputs = trained.branches(images)
    panels = []
    for index, (image, out) in enumerate(zip(images, outputs)):
        view = input_view(image.size, resize, crop)
        picture = model_view(image, view, display_size(view.input_size))
        if boxes is not None and boxes[index] is not None:
            picture = draw_box(picture, view, boxes[index])
        parts = [captions[index]] if captions is not None else []
        if out["scores"] is not None:
            best = int(np.argmax(out["scores"]))
            parts.append(f"predicted: {trained.class_name(best)} ({out['scores'][best]:.2f})")
        panels.append(attention_panel(picture, out["rollout"], trained.grid_size, out["selected"], " ".join(parts) or None))
    return panels
