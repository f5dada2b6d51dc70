"""The folder layout Market-1501 is distributed in, which DukeMTMC-reID and the synthetic Re-ID set
(``dcal demo-data --task reid``) share: ``bounding_box_train/``, ``query/`` and
``bounding_box_test/`` of ``<pid>_c<camera>....jpg`` files.

Identity −1 marks junk boxes, dropped from every split; identity 0 marks Market-1501's distractors,
kept in the gallery (they can only be false matches).
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, require
from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits, pid_camera_from_name

FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
JUNK_PID = -1


def read_folder(folder: Path, dataset: str, pids: range, cameras: range) -> list[ReIDRecord]:
    """A record (identity as written, 0-based camera) for every ``.jpg`` in ``folder`` except junk."""
    records = []
    for path in sorted(folder.glob("*.jpg")):
        pid, camera = pid_camera_from_name(path, dataset, pids, cameras, junk=JUNK_PID)
        if pid != JUNK_PID:
            records.append(ReIDRecord.as_written(str(path), pid, camera - 1))
    return records


def load_market_layout(root, dataset: str, official: dict, layout: str, pids: range, cameras: range) -> DatasetSplits:
    """Train / query / gallery of a dataset in this layout; identities and cameras outside ``pids`` /
    ``cameras`` (the dataset's naming rules) are errors."""
    root = find_root(root, FOLDERS["train"], dataset, layout)
    lists = {split: read_folder(require(root / folder, dataset, layout), dataset, pids, cameras)
             for split, folder in FOLDERS.items()}
    return build_reid_splits(dataset, root, lists["train"], lists["query"], lists["gallery"], official)
