"""Market-1501 (Zheng et al., ICCV 2015) as ``Market-1501-v15.09.15.zip`` unpacks.

Layout: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` of ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``.
Identity −1 marks junk boxes, dropped from every split; identity 0 marks distractors, kept in the
gallery (they can only be false matches).  DukeMTMC-reID is distributed in the same layout and is
read by the same code (:func:`parse_market_layout`).
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, require
from dcal.data.records import DatasetSplits
from dcal.data.splits import build_reid_splits, pid_camera_from_name

LAYOUT = "bounding_box_train/, query/, bounding_box_test/ holding <pid>_c<camera>... .jpg files"
FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
OFFICIAL = {
    "train": {"images": 12936, "ids": 751, "cameras": 6},
    "query": {"images": 3368, "ids": 750, "cameras": 6},
    "gallery": {"images": 15913, "ids": 751, "cameras": 6},  # 750 test ids + distractors (0)
}
JUNK_PID = -1
PIDS, CAMERAS = range(0, 1502), range(1, 7)  # 0: distractors; the test identities go up to 1501


def read_folder(folder: Path, dataset: str, pids: range = PIDS, cameras: range = CAMERAS) -> list[tuple[str, int, int]]:
    """``(path, pid, 0-based camid)`` for every ``.jpg`` in ``folder`` except junk (pid −1)."""
    entries = []
    for path in sorted(folder.glob("*.jpg")):
        pid, camera = pid_camera_from_name(path, dataset, pids, cameras, junk=JUNK_PID)
        if pid != JUNK_PID:
            entries.append((str(path), pid, camera - 1))
    return entries


def parse_market_layout(root, dataset: str, official: dict, layout: str, pids: range = PIDS,
                        cameras: range = CAMERAS) -> DatasetSplits:
    """Read a Market-1501-style folder (Market-1501, DukeMTMC-reID, the synthetic Re-ID set);
    identities and cameras outside ``pids`` / ``cameras`` are errors."""
    root = find_root(root, FOLDERS["train"], dataset, layout)
    lists = {split: read_folder(require(root / folder, dataset, layout), dataset, pids, cameras)
             for split, folder in FOLDERS.items()}
    return build_reid_splits(dataset, root, lists["train"], lists["query"], lists["gallery"], official)


def load(root) -> DatasetSplits:
    """Market-1501 train / query / gallery."""
    return parse_market_layout(root, "market1501", OFFICIAL, LAYOUT)
