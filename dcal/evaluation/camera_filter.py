"""Which gallery items a query's ranking leaves out, with camera ids and without.

With camera ids (the Market-1501 protocol, Sec. 4.2's benchmarks), gallery items of the query's
identity *and* camera are left out: they are near-duplicates from the same track, and a query is
scored only on its matches from other cameras.

Without camera ids (VehicleID, a ``reid_list`` without a camera column, ``reid_folder``) that rule
cannot be applied.  Only the query image itself is left out — the gallery item with the same image
file, where query and gallery share images — and every other image of the identity counts as a true
match, same-camera near-duplicates included.  Scores are therefore higher than the camera-filtered
protocol would give on the same images, and the two are not comparable.

Both rules run through :func:`dcal.evaluation.reid_metrics` unchanged: :func:`exclusion_groups`
returns the ids it compares in place of cameras — the cameras themselves, or one id per distinct
image file, so that "same identity and same id" means "the same image".
"""

from __future__ import annotations

import os

import numpy as np

from dcal.data.records import NO_CAMERA

#: ``gallery_exclusion`` in the metrics: what each query's ranking left out.
SAME_CAMERA = "same_camera"
QUERY_IMAGE = "query_image"
#: What the evaluation output says when the data has no camera ids.
NO_CAMERA_NOTE = "no camera ids: only each query's own image is left out of its ranking; same-camera matches count"


def has_cameras(*camids) -> bool:
    return all(bool(np.all(np.asarray(c) != NO_CAMERA)) for c in camids)


def image_groups(query_paths, gallery_paths) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct image file (paths compared after :func:`os.path.normpath`), for the
    queries and for the gallery: equal exactly where a query and a gallery item are the same file."""
    code: dict[str, int] = {}
    groups = []
    for paths in (query_paths, gallery_paths):
        groups.append(np.array([code.setdefault(os.path.normpath(str(p)), len(code)) for p in paths], dtype=np.int64))
    return groups[0], groups[1]


def exclusion_groups(q_camids, g_camids, query_paths, gallery_paths) -> tuple[np.ndarray, np.ndarray, str]:
    """``(query ids, gallery ids, rule)`` to pass to :func:`~dcal.evaluation.reid_metrics` as cameras.

    Where every query and gallery item has a camera: the cameras and :data:`SAME_CAMERA`.  Where any
    lacks one: :func:`image_groups` and :data:`QUERY_IMAGE` (the rule is one for the whole set).
    """
    if has_cameras(q_camids, g_camids):
        return np.asarray(q_camids, dtype=np.int64), np.asarray(g_camids, dtype=np.int64), SAME_CAMERA
    return (*image_groups(query_paths, gallery_paths), QUERY_IMAGE)
