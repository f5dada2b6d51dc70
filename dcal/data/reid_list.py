"""A user's own Re-ID data as plain list files.

Layout: ``train.txt``, ``query.txt``, ``gallery.txt`` in the root, one image a line:
``<path> <pid> <camid>`` separated by whitespace, the path relative to the root (or absolute),
``pid`` any integer identity (−1 = junk, dropped; relabelled to 0..n-1 for training), ``camid`` a
0-based camera index.  There are no official sizes to check.

Without camera ids, lines are ``<path> <pid>`` (in all three files alike): records get ``camid`` =
``NO_CAMERA`` and evaluation leaves out only each query's own image — query and gallery may then
list the same images (:mod:`dcal.evaluation.camera_filter`).  The first line decides: it has
a camera column when its last two fields are integers.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, malformed_line, read_lines, read_numbered_lines, require_files
from dcal.data.records import NO_CAMERA, DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits

DATASET = "reid_list"
LAYOUT = ("train.txt, query.txt, gallery.txt with lines '<path relative to the root> <pid> <camid>' "
          "(or '<path> <pid>' without camera ids)")


def _has_camera_column(line: str) -> bool:
    """Whether a line ends in two integers (``<path> <pid> <camid>``)."""
    fields = line.rsplit(maxsplit=2)
    return len(fields) == 3 and all(_is_int(f) for f in fields[1:])


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_list(list_path: Path, root: Path, cameras: bool = True) -> list[ReIDRecord]:
    """A record (identity as written; ``camid`` = ``NO_CAMERA`` if not ``cameras``) per line, junk
    (pid −1) dropped."""
    form = "<path> <pid> <camid>" if cameras else "<path> <pid>"
    records = []
    for number, line in read_numbered_lines(list_path, DATASET, LAYOUT):
        fields = line.rsplit(maxsplit=2 if cameras else 1)
        if cameras != _has_camera_column(line) or not all(_is_int(f) for f in fields[1:]) or len(fields) < 2:
            raise malformed_line(DATASET, list_path, number, line, form, "like the first line of the lists")
        pid, camid = int(fields[1]), int(fields[2]) if cameras else NO_CAMERA
        if pid != -1:
            records.append(ReIDRecord.as_written(str(root / fields[0]), pid, camid))
    require_files([r.path for r in records], DATASET, list_path)
    return records


def load(root) -> DatasetSplits:
    """train / query / gallery from the three list files, with or without camera ids as their first line."""
    root = find_root(root, "train.txt", DATASET, LAYOUT)
    paths = {split: root / f"{split}.txt" for split in ("train", "query", "gallery")}
    first = next((lines[0] for lines in (read_lines(p, DATASET, LAYOUT) for p in paths.values()) if lines), "")
    cameras = _has_camera_column(first)
    lists = {split: read_list(path, root, cameras) for split, path in paths.items()}
    return build_reid_splits(DATASET, root, lists["train"], lists["query"], lists["gallery"], official={})
