"""Search a gallery with query images: the nearest gallery images by the model's inference features.

Re-ID: the L2-normalised features ``dcal eval`` ranks, compared by Euclidean distance (paper §4.2);
FGVC: the SA and GLCA class-token features (:mod:`dcal.export.features`), L2-normalised and compared
the same way, for "more images like this one".  The gallery (:mod:`dcal.export.gallery`) is read in
chunks and only a running top-k is kept (:func:`dcal.evaluation.nearest.nearest`).

From Python::

    from dcal.engine.trained_model import load_trained
    from dcal.export.gallery import open_gallery
    from dcal.export.gallery_search import search

    trained = load_trained("runs/market/checkpoints/best.pt")
    gallery = open_gallery(trained, "my_camera_crops/")      # features cached in the folder
    results = search(trained, ["person.jpg"], gallery, topk=10)
    results[0]["results"][0]                                 # {"path": ..., "distance": ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dcal.data.image_dataset import load_image
from dcal.errors import DatasetError
from dcal.evaluation.nearest import DEFAULT_CHUNK_ROWS, nearest
from dcal.export.gallery import Gallery, image_features
from dcal.viz.rank_list import rank_list_row


def query_features(trained, paths: Sequence, *, batch_size: int = 64, num_workers: int = 0) -> np.ndarray:
    """(n, d) features of the query images; an unreadable query raises :class:`DatasetError`."""
    blocks = [feats for _, feats in image_features(trained, paths, batch_size=batch_size, num_workers=num_workers)]
    return np.concatenate(blocks)


def search(trained, query_paths: Sequence, gallery: Gallery, topk: int = 10, *, batch_size: int = 64,
           num_workers: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list:
    """Per query ``{"query": path, "results": [{"path": ..., "distance": ...}, ...]}``, nearest first
    (at most ``topk`` results).  The gallery's features must have the queries' dimension."""
    queries = query_features(trained, query_paths, batch_size=batch_size, num_workers=num_workers)
    if queries.shape[1] != gallery.dim:
        raise DatasetError(f"gallery {gallery.source} holds features of dimension {gallery.dim}, but "
                           f"{trained.path} gives features of dimension {queries.shape[1]}: it comes from another "
                           "model; extract the gallery with this checkpoint (dcal extract) or give a folder")
    distances, indices = nearest(queries, gallery.features.chunks(chunk_rows), topk)
    return [
        {"query": str(path), "results": [{"path": gallery.paths[int(i)], "distance": float(d)}
                                         for d, i in zip(distances[row], indices[row])]}
        for row, path in enumerate(query_paths)
    ]


def contact_sheet(result: dict, input_size: Sequence[int], tile_height: int = 160):
    """One query and its results as a rank-list row (:func:`dcal.viz.rank_list.rank_list_row`):
    the query framed blue, each result framed grey (no identities to compare), its file name and
    distance below.  Tiles keep the network input's aspect (``input_size`` = ``(height, width)``)."""
    tile_size = (max(1, round(tile_height * input_size[1] / input_size[0])), tile_height)
    hits = result["results"]
    return rank_list_row(
        load_image(str(result["query"])),
        [load_image(str(hit["path"])) for hit in hits],
        [None] * len(hits),
        tile_size=tile_size,
        query_lines=(Path(result["query"]).name, "query"),
        gallery_lines=[(Path(hit["path"]).name, f"{hit['distance']:.3f}") for hit in hits],
    )
