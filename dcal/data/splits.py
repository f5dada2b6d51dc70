"""The splits a parser returns, and what every parser shares to build them.

- :func:`summarize` counts each split (images, classes or identities, cameras): what ``dcal data``
  prints and what the parsers compare with the official sizes.
- :func:`build_fgvc_splits` assembles an FGVC dataset's :class:`~dcal.data.records.DatasetSplits`
  and checks its sizes and class labels.
- Re-ID: identity and camera from a file name (:func:`pid_camera_from_name`), training-id
  relabelling, and :func:`build_reid_splits`.  File names of Market-1501
  (``0002_c1s1_000451_03.jpg``), DukeMTMC-reID (``0001_c2_f0046182.jpg``) and VeRi-776
  (``0001_c001_00016450_0.jpg``) all start with ``<pid>_c<camera>``; the camera number is 1-based
  in the file and 0-based in :class:`~dcal.data.records.ReIDRecord` (as torchreid).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from dcal.data.layout import check_split_sizes
from dcal.data.records import NO_CAMERA, DatasetSplits, FGVCRecord, ReIDRecord
from dcal.errors import DatasetError


def summarize_split(records: list) -> dict:
    """``{"images": n, "classes": k}`` for FGVC records, ``{"images": n, "ids": k, "cameras": c}`` for Re-ID
    (without ``cameras`` where no record has a camera id)."""
    if records and isinstance(records[0], FGVCRecord):
        return {"images": len(records), "classes": len({r.label for r in records})}
    if not records:
        return {"images": 0}
    cameras = {r.camid for r in records} - {NO_CAMERA}
    counts = {"images": len(records), "ids": len({r.original_pid for r in records})}
    return {**counts, "cameras": len(cameras)} if cameras else counts


def summarize(splits: dict) -> dict:
    """:func:`summarize_split` for every split, keyed by split name."""
    return {name: summarize_split(records) for name, records in splits.items()}


def build_fgvc_splits(name: str, root: Path, splits: dict, class_names, official: dict,
                      train_split: str = "train") -> DatasetSplits:
    """The :class:`DatasetSplits` of FGVC record lists, checked against ``official``."""
    mismatches = check_split_sizes(name, root, summarize(splits), official)
    num_classes = len(class_names) if class_names is not None else len({r.label for r in splits[train_split]})
    for split, records in splits.items():  # a class id outside the dataset's classes is an error, not a new class
        bad = next((r for r in records if not 0 <= r.label < num_classes), None)
        if bad is not None:
            raise DatasetError(f"{name}: {bad.path} ({split}) has class label {bad.label + 1} (1-based), "
                               f"outside the dataset's {num_classes} classes")
    return DatasetSplits(name=name, task="fgvc", root=root, splits=splits, num_classes=num_classes,
                         class_names=class_names, train_split=train_split, mismatches=mismatches)


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


def relabel(records: list[ReIDRecord]) -> list[ReIDRecord]:
    """Training records with ``pid`` relabelled to 0..n-1 in sorted order of the original ids."""
    label_of = {pid: label for label, pid in enumerate(sorted({r.original_pid for r in records}))}
    return [replace(r, pid=label_of[r.original_pid]) for r in records]


def build_reid_splits(name: str, root: Path, train: list[ReIDRecord], query: list[ReIDRecord],
                      gallery: list[ReIDRecord], official: dict) -> DatasetSplits:
    """The :class:`DatasetSplits` of records read with identities as written
    (:meth:`ReIDRecord.as_written`), training identities relabelled, checked against ``official``."""
    splits = {"train": relabel(train), "query": query, "gallery": gallery}
    mismatches = check_split_sizes(name, root, summarize(splits), official)
    num_ids = len({r.pid for r in splits["train"]})
    return DatasetSplits(
        name=name, task="reid", root=root, splits=splits, num_classes=num_ids, mismatches=mismatches
    )
