"""VeRi-776 (Liu et al., ECCV 2016 / ICME 2016) as ``VeRi.zip`` unpacks.

Layout: ``image_train/``, ``image_query/``, ``image_test/`` and the lists ``name_train.txt``,
``name_query.txt``, ``name_test.txt`` (one file name a line); ``0001_c001_00016450_0.jpg`` is
vehicle 1 seen by camera 1.  The lists define the splits; every listed file must exist.
"""

from __future__ import annotations

from dcal.data.layout import find_root, read_lines, require, require_files
from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits, pid_camera_from_name

DATASET = "veri776"
LAYOUT = "image_train/, image_query/, image_test/, name_train.txt, name_query.txt, name_test.txt"
SPLITS = {"train": ("image_train", "name_train.txt"), "query": ("image_query", "name_query.txt"),
          "gallery": ("image_test", "name_test.txt")}
OFFICIAL = {
    "train": {"images": 37778, "ids": 576, "cameras": 20},
    "query": {"images": 1678, "ids": 200},
    "gallery": {"images": 11579, "ids": 200},
}


def load(root) -> DatasetSplits:
    """VeRi-776 train / query / gallery."""
    root = find_root(root, "image_train", DATASET, LAYOUT)
    lists = {}
    for split, (folder, list_name) in SPLITS.items():
        folder_path = require(root / folder, DATASET, LAYOUT)
        list_path = root / list_name
        paths = [folder_path / name for name in read_lines(list_path, DATASET, LAYOUT)]
        require_files(paths, DATASET, list_path)
        records = []
        for path in paths:
            pid, camera = pid_camera_from_name(path, DATASET, pids=range(0, 777), cameras=range(1, 21))
            records.append(ReIDRecord.as_written(str(path), pid, camera - 1))
        lists[split] = records
    return build_reid_splits(DATASET, root, lists["train"], lists["query"], lists["gallery"], OFFICIAL)
