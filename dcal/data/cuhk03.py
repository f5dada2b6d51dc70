"""CUHK03 (Li et al., CVPR 2014) under the new protocol (CUHK03-NP; Zhong et al., CVPR 2017) as
``cuhk03-np.zip`` unpacks.

Layout: ``detected/`` and ``labeled/`` (boxes from a pedestrian detector or drawn by hand), each
with Market-1501's folders (:data:`dcal.data.market_layout.FOLDERS`: ``bounding_box_train/``,
``query/`` and ``bounding_box_test/``) of ``<pid>_c<camera>_<index>.png`` files (``.jpg`` is read
too); 767 training and 700 test identities, two cameras.  Option ``variant``: ``"detected"`` (default, the harder one most papers report first)
or ``"labeled"``.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, require
from dcal.data.market_layout import FOLDERS
from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits, pid_camera_from_name
from dcal.errors import DatasetError

DATASET = "cuhk03"
LAYOUT = ("detected/ and labeled/, each with bounding_box_train/, query/, bounding_box_test/ holding "
          "<pid>_c<camera>_<index>.png files")
SUFFIXES = {".png", ".jpg"}
_IDS = {"train": 767, "query": 700, "gallery": 700}
OFFICIAL = {
    variant: {split: {"images": images, "ids": _IDS[split], "cameras": 2} for split, images in sizes.items()}
    for variant, sizes in {"detected": {"train": 7365, "query": 1400, "gallery": 5332},
                           "labeled": {"train": 7368, "query": 1400, "gallery": 5328}}.items()
}


def read_folder(folder: Path) -> list[ReIDRecord]:
    """A record (identity as written, 0-based camera) for every image of ``folder``."""
    records = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in SUFFIXES:
            pid, camera = pid_camera_from_name(path, DATASET)
            records.append(ReIDRecord.as_written(str(path), pid, camera - 1))
    return records


def load(root, variant: str = "detected") -> DatasetSplits:
    """CUHK03-NP train / query / gallery of the detected or the labeled boxes."""
    if variant not in OFFICIAL:
        raise DatasetError(f"{DATASET}: variant '{variant}' is not one of {', '.join(OFFICIAL)}")
    root = find_root(root, variant, DATASET, LAYOUT)
    base = root / variant
    lists = {split: read_folder(require(base / folder, DATASET, LAYOUT)) for split, folder in FOLDERS.items()}
    return build_reid_splits(DATASET, root, lists["train"], lists["query"], lists["gallery"], OFFICIAL[variant])
