"""Checks of a parsed dataset for what training would trip over later: empty splits and images that
do not decode.  ``dcal data`` runs them (``--verify`` decodes every image); training checks the
splits it reads before its first step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from dcal.data.image_dataset import load_record_image
from dcal.data.records import DatasetSplits
from dcal.errors import DatasetError


def used_splits(data: DatasetSplits, train_split: str | None = None) -> list[str]:
    """The splits training and evaluation read: the training split and the evaluation splits."""
    names = [train_split or data.train_split, *data.eval_splits]
    return [name for name in dict.fromkeys(names) if name in data.splits]


def require_images(data: DatasetSplits, names) -> None:
    """Raise :class:`DatasetError` naming every split of ``names`` that holds no image."""
    empty = [name for name in names if not data.splits.get(name)]
    if empty:
        raise DatasetError(f"{data.name} at {data.root}: the {', '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} "
                           "empty (0 images); training and evaluation need images in each")


def undecodable(records, threads: int | None = None) -> dict:
    """``{path: reason}`` of the records whose image cannot be decoded (each path decoded once,
    on ``threads`` threads; Pillow decodes outside the GIL)."""
    unique = list({record.path: record for record in records}.values())

    def check(record):
        try:
            load_record_image(record)
        except DatasetError as error:
            return record.path, str(error)
        return None

    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        return dict(found for found in pool.map(check, unique) if found is not None)


def drop_undecodable(data: DatasetSplits, names, skip_paths=None) -> dict:
    """Remove from the splits ``names`` the records whose image cannot be decoded (``skip_paths``:
    the paths found so already, e.g. by another process); returns ``{split: paths dropped}``."""
    if skip_paths is None:
        skip_paths = set(undecodable([r for name in names for r in data.splits[name]]))
    dropped = {}
    for name in names:
        kept = [r for r in data.splits[name] if r.path not in skip_paths]
        dropped[name] = [r.path for r in data.splits[name] if r.path in skip_paths]
        data.splits[name] = kept
    return dropped
