"""Re-ID rank lists: a query and its top-k gallery images, true matches framed green, mistakes red.

The ranking follows the Market-1501 evaluation protocol: gallery images of the query's identity
taken by the query's camera are left out before ranking (they are not counted by mAP/CMC either) —
without camera ids only the query image itself (:mod:`dcal.evaluation.camera_filter`) — and the
remaining gallery is sorted by ascending distance.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from dcal.data.image_dataset import load_image
from dcal.evaluation.camera_filter import exclusion_groups
from dcal.evaluation.distances import PairwiseDistance
from dcal.viz.figure_grid import BACKGROUND, TEXT, caption_font, grid

QUERY_COLOR = (40, 90, 220)
MATCH_COLOR = (30, 160, 60)
MISTAKE_COLOR = (220, 40, 40)
UNKNOWN_COLOR = (150, 150, 150)  # no identity to compare with (dcal search on unlabelled images)
BORDER = 4
LABEL_HEIGHT = 30
GAP = 6


def ranked_gallery(
    distances: np.ndarray,
    query_pid: int,
    query_camid: int,
    gallery_pids: np.ndarray,
    gallery_camids: np.ndarray,
    topk: int,
) -> np.ndarray:
    """Indices of the ``topk`` nearest gallery items for one query (``distances``: (num_gallery,)),
    leaving out same identity *and* same camera, nearest first (ties in gallery order)."""
    order = np.argsort(np.asarray(distances), kind="stable")
    junk = (np.asarray(gallery_pids)[order] == query_pid) & (np.asarray(gallery_camids)[order] == query_camid)
    return order[~junk][:topk]


def _tile(image: Image.Image, size: Sequence[int], color, lines: Sequence[str]) -> Image.Image:
    """``image`` fitted to ``size`` inside a ``color`` frame of :data:`BORDER` pixels, with up to two
    lines of text below."""
    width, height = int(size[0]), int(size[1])
    tile = Image.new("RGB", (width + 2 * BORDER, height + 2 * BORDER + LABEL_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, 0, width + 2 * BORDER - 1, height + 2 * BORDER - 1], fill=color)
    tile.paste(image.convert("RGB").resize((width, height), Image.BICUBIC), (BORDER, BORDER))
    font = caption_font()
    for line_number, line in enumerate(lines[:2]):
        draw.text((1, height + 2 * BORDER + 1 + 14 * line_number), line, fill=TEXT, font=font)
    return tile


def rank_list_row(
    query: Image.Image,
    gallery: Sequence[Image.Image],
    matches: Sequence[Optional[bool]],
    *,
    tile_size: Sequence[int] = (64, 128),
    query_lines: Sequence[str] = ("query",),
    gallery_lines: Optional[Sequence[Sequence[str]]] = None,
) -> Image.Image:
    """One query and its ranked gallery images, left to right.

    The query is framed blue, then after a wider gap each gallery image is framed green when
    ``matches[i]`` (same identity), red when it is false and grey when it is ``None`` (unknown);
    ``tile_size`` is each image's ``(width,
    height)``, ``query_lines``/``gallery_lines[i]`` the (at most two) text lines under each tile.
    The row is ``(1 + k) * (width + 2 * BORDER) + (k + 2) * GAP`` wide and
    ``height + 2 * BORDER + LABEL_HEIGHT`` high for k gallery images.
    """
    if len(gallery) != len(matches):
        raise ValueError(f"{len(gallery)} gallery images but {len(matches)} match flags")
    gallery_lines = gallery_lines or [()] * len(gallery)
    tiles = [_tile(query, tile_size, QUERY_COLOR, query_lines)]
    tiles += [
        _tile(image, tile_size, UNKNOWN_COLOR if match is None else MATCH_COLOR if match else MISTAKE_COLOR, lines)
        for image, match, lines in zip(gallery, matches, gallery_lines)
    ]
    tile_w, tile_h = tiles[0].size
    row = Image.new("RGB", (len(tiles) * tile_w + (len(tiles) + 1) * GAP, tile_h), BACKGROUND)
    for index, tile in enumerate(tiles):
        row.paste(tile, (index * tile_w + index * GAP + (GAP if index else 0), 0))
    return row


def rank_list_figure(query, gallery, query_indices: Sequence[int], topk: int = 10, tile_height: int = 160,
                     input_size: Sequence[int] = (256, 128)) -> Image.Image:
    """Rank lists of the queries ``query_indices``, one row each, stacked top to bottom.

    ``query``/``gallery`` are :class:`~dcal.export.features.Features` of the two splits (Re-ID);
    the gallery is ranked by Euclidean distance between features, as ``dcal eval`` does by default.
    Tiles keep the network input's aspect (``input_size`` = ``(height, width)``) at ``tile_height``
    pixels; under each image: identity and camera (1-based, as in the file names), and the distance.
    """
    tile_size = (max(1, round(tile_height * input_size[1] / input_size[0])), tile_height)
    chosen = list(query_indices)
    squared = PairwiseDistance(torch.from_numpy(gallery.features).double())(torch.from_numpy(query.features[chosen]))
    distances = squared.clamp_min(0).sqrt().numpy()  # the evaluation's distances, shown as Euclidean
    q_groups, g_groups, _ = exclusion_groups(query.cameras, gallery.cameras, query.paths, gallery.paths)
    rows = []
    for row, q in enumerate(chosen):
        ranked = ranked_gallery(distances[row], query.labels[q], q_groups[q], gallery.labels, g_groups, topk)
        rows.append(
            rank_list_row(
                load_image(str(query.paths[q])),
                [load_image(str(gallery.paths[g])) for g in ranked],
                [bool(gallery.labels[g] == query.labels[q]) for g in ranked],
                tile_size=tile_size,
                query_lines=(_caption(query.labels[q], query.cameras[q]), "query"),
                gallery_lines=[(_caption(gallery.labels[g], gallery.cameras[g]), f"{distances[row, g]:.2f}") for g in ranked],
            )
        )
    return grid(rows, columns=1)


def _caption(label, camera) -> str:
    """``id 12 c3`` (the camera 1-based, as in the file names), or ``id 12`` without a camera id."""
    return f"id {label}" if camera < 0 else f"id {label} c{camera + 1}"
