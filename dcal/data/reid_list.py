"""A user's own Re-ID data as plain list files.

Layout: ``train.txt``, ``query.txt``, ``gallery.txt`` in the root, one image a line:
``<path> <pid> <camid>`` separated by whitespace, the path relative to the root (or absolute),
``pid`` any integer identity (−1 = junk, dropped; relabelled to 0..n-1 for training), ``camid`` a
0-based camera index.  There are no official sizes to check.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, read_lines, require_files
from dcal.data.records import DatasetSplits
from dcal.data.reid_splits import build_reid_splits
from dcal.errors import DatasetError

DATASET = "reid_list"
LAYOUT = "train.txt, query.txt, gallery.txt with lines '<path relative to the root> <pid> <camid>'"


def read_list(list_path: Path, root: Path) -> list[tuple[str, int, int]]:
    """``(path, pid, camid)`` per line, junk (pid −1) dropped."""
    entries = []
    for number, line in enumerate(read_lines(list_path, DATASET, LAYOUT), start=1):
        fields = line.rsplit(maxsplit=2)
        try:
            path, pid, camid = root / fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise DatasetError(f"{DATASET}: line {number} of {list_path} ('{line}') is not '<path> <pid> <camid>'") from None
        if pid != -1:
            entries.append((str(path), pid, camid))
    require_files([path for path, _, _ in entries], DATASET, list_path)
    return entries


def load(root) -> DatasetSplits:
    """train / query / gallery from the three list files."""
    root = find_root(root, "train.txt", DATASET, LAYOUT)
    lists = {split: read_list(root / f"{split}.txt", root) for split in ("train", "query", "gallery")}
    return build_reid_splits(DATASET, root, lists["train"], lists["query"], lists["gallery"], official={})
