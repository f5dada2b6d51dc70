"""What every Re-ID parser shares: identity and camera from a file name, training-id relabelling,
and the size check.

File names of Market-1501 (``0002_c1s1_000451_03.jpg``), DukeMTMC-reID (``0001_c2_f0046182.jpg``)
and VeRi-776 (``0001_c001_00016450_0.jpg``) all start with ``<pid>_c<camera>``; the camera number is
1-based in the file and 0-based in :class:`~dcal.data.records.ReIDRecord` (as torchreid).
"""

from __future__ import annotations

import re
from pathlib import Path

from dcal.data.layout import check_split_sizes
from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.split_summary import summarize
from dcal.errors import DatasetError

_PID_CAMERA = re.compile(r"^(-?\d+)_c(\d+)")


def pid_camera_from_name(path, dataset: str, pids: range | None = None, cameras: range | None = None,
                         junk: int | None = None) -> tuple[int, int]:
    """``(pid, camera number as written)`` from a ``<pid>_c<camera>...`` file name.

    ``pids`` and ``cameras``: the values the dataset's naming rules allow (``junk``, e.g. −1, is
    allowed too); any other value is a :class:`DatasetError` naming the file, never remapped.
    """
    match = _PID_CAMERA.match(Path(path).name)
    if match is None:
        raise DatasetError(f"{dataset}: file name {path} does not start with <pid>_c<camera> as expected")
    pid, camera = int(match.group(1)), int(match.group(2))
    check_identifiers(path, dataset, pid, camera, pids, cameras, junk)
    return pid, camera


def check_identifiers(where, dataset: str, pid: int, camera: int, pids: range | None = None,
                      cameras: range | None = None, junk: int | None = None) -> None:
    """Raise :class:`DatasetError` when ``pid`` or ``camera`` (as written) is outside the dataset's rules."""
    if pids is not None and pid not in pids and pid != junk:
        allowed = f"{pids.start}..{pids.stop - 1}" + (f" (or {junk}: junk)" if junk is not None else "")
        raise DatasetError(f"{dataset}: {where}: identity {pid} is not allowed by the dataset's naming rules ({allowed})")
    if cameras is not None and camera not in cameras:
        raise DatasetError(f"{dataset}: {where}: camera {camera} is not allowed by the dataset's naming rules "
                           f"({cameras.start}..{cameras.stop - 1})")


def relabel(entries: list[tuple[str, int, int]]) -> list[ReIDRecord]:
    """Training records with ``pid`` relabelled to 0..n-1 in sorted order of the original ids."""
    label_of = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in entries}))}
    return [ReIDRecord(path=path, pid=label_of[pid], camid=camid, original_pid=pid) for path, pid, camid in entries]


def keep_ids(entries: list[tuple[str, int, int]]) -> list[ReIDRecord]:
    """Query or gallery records, identities as written."""
    return [ReIDRecord(path=path, pid=pid, camid=camid, original_pid=pid) for path, pid, camid in entries]


def build_reid_splits(name: str, root: Path, train, query, gallery, official: dict) -> DatasetSplits:
    """The :class:`DatasetSplits` of ``(path, pid, 0-based camid)`` lists, checked against ``official``."""
    splits = {"train": relabel(train), "query": keep_ids(query), "gallery": keep_ids(gallery)}
    mismatches = check_split_sizes(name, root, summarize(splits), official)
    num_ids = len({r.pid for r in splits["train"]})
    return DatasetSplits(
        name=name, task="reid", root=root, splits=splits, num_classes=num_ids, mismatches=mismatches
    )
