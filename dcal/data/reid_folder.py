"""A user's own Re-ID data as one folder per identity, ``image_folder`` style, without camera ids.

Layout: ``train/<identity>/<image>`` and either ``query/<identity>/<image>`` with
``gallery/<identity>/<image>``, or ``test/<identity>/<image>`` alone — then every test image is a
query ranked against all the test images.  Identities are the folder names (any text): training
identities are relabelled 0..n-1 in sorted order; query and gallery identities are numbered by
the sorted names over both (``original_pid``), so a name means the same identity in each.  Images
are files with one of :data:`dcal.data.image_files.IMAGE_SUFFIXES` (any case).

There are no camera ids (``camid`` = ``NO_CAMERA``): evaluation leaves out only each query's own
image (:mod:`dcal.evaluation.camera_filter`).  There are no official sizes to check.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.image_files import is_image
from dcal.data.layout import find_root, require
from dcal.data.records import NO_CAMERA, DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits
from dcal.errors import DatasetError

DATASET = "reid_folder"
LAYOUT = "train/<identity>/<image> and query/<identity>/<image> + gallery/<identity>/<image>, or test/<identity>/<image>"


def _identity_folders(split: Path) -> dict[str, list[Path]]:
    """``{identity folder name: its images, sorted}``."""
    folders = {sub.name: sorted(p for p in sub.iterdir() if is_image(p))
               for sub in sorted(require(split, DATASET, LAYOUT).iterdir()) if sub.is_dir()}
    if not any(folders.values()):
        raise DatasetError(f"{DATASET}: {split} has no identity folders with images; expected layout: {LAYOUT}")
    return folders


def _records(folders: dict[str, list[Path]], pid_of: dict[str, int]) -> list[ReIDRecord]:
    """A record per image, its identity numbered by ``pid_of`` its folder name, without a camera."""
    return [ReIDRecord.as_written(str(path), pid_of[name], NO_CAMERA) for name, paths in folders.items() for path in paths]


def load(root) -> DatasetSplits:
    """train / query / gallery from identity folders (query = gallery = ``test/`` if that is given)."""
    root = find_root(root, "train", DATASET, LAYOUT)
    train = _identity_folders(root / "train")
    if (root / "query").is_dir() or not (root / "test").is_dir():
        query, gallery = _identity_folders(root / "query"), _identity_folders(root / "gallery")
    else:
        query = gallery = _identity_folders(root / "test")
    test_pid = {name: pid for pid, name in enumerate(sorted(set(query) | set(gallery)))}
    train_pid = {name: pid for pid, name in enumerate(sorted(train))}
    return build_reid_splits(DATASET, root, _records(train, train_pid), _records(query, test_pid),
                             _records(gallery, test_pid), official={})
