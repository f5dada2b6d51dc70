"""Stanford Dogs (Khosla et al., CVPR-W FGVC 2011) as ``images.tar``, ``annotation.tar`` and
``lists.tar`` unpack, side by side.

Layout: ``Images/<wnid>-<breed>/<wnid>_<n>.jpg``; ``Annotation/<wnid>-<breed>/<wnid>_<n>`` (no
extension), one PASCAL-VOC-style XML file per image with an ``<object><bndbox>`` (``xmin``,
``ymin``, ``xmax``, ``ymax``, 1-based inclusive pixels) per dog; ``train_list.mat`` and
``test_list.mat`` with ``file_list`` (paths under ``Images/``), ``annotation_list`` (paths under
``Annotation/``) and ``labels`` (1-based class of each image).

Records hold the box enclosing every dog of the image as ``(xmin − 1, ymin − 1, xmax − xmin + 1,
ymax − ymin + 1)``; without an ``Annotation/`` folder they have no box.  Class names are the breed
parts of the folder names (``n02085620-Chihuahua`` is "Chihuahua"), ``_`` read as a space.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import scipy.io

from dcal.data.splits import build_fgvc_splits
from dcal.data.layout import find_root, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "stanford_dogs"
LAYOUT = ("Images/<wnid>-<breed>/<file>.jpg, Annotation/<wnid>-<breed>/<file>, train_list.mat, test_list.mat "
          "(file_list, annotation_list, labels)")
FIELDS = ("file_list", "annotation_list", "labels")
OFFICIAL = {"train": {"images": 12000, "classes": 120}, "test": {"images": 8580, "classes": 120}}


def _read_list(path: Path) -> list[tuple[str, str, int]]:
    """``(file, annotation, 0-based label)`` per image of a ``*_list.mat``."""
    require(path, DATASET, LAYOUT)
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True)
    except Exception as error:  # scipy raises several unrelated types for a damaged file
        raise DatasetError(f"{DATASET}: cannot read {path} as a MATLAB file: {error}") from None
    missing = [name for name in FIELDS if name not in mat]
    if missing:
        raise DatasetError(f"{DATASET}: {path} has no {', '.join(missing)} (expected fields {', '.join(FIELDS)})")
    files, annotations, labels = (np.atleast_1d(mat[name]) for name in FIELDS)
    if not len(files) == len(annotations) == len(labels):
        raise DatasetError(f"{DATASET}: {path} lists {len(files)} files, {len(annotations)} annotations "
                           f"and {len(labels)} labels; expected one of each per image")
    return [(str(f), str(a), int(label) - 1) for f, a, label in zip(files, annotations, labels)]


def _box(path: Path) -> tuple:
    """The box enclosing every ``<object><bndbox>`` of one annotation file."""
    try:
        boxes = [[float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                 for box in ElementTree.parse(path).getroot().iter("bndbox")]
    except FileNotFoundError:
        raise DatasetError(f"{DATASET}: annotation {path} not found; expected layout under the root: {LAYOUT}") from None
    except (ElementTree.ParseError, TypeError, ValueError) as error:
        raise DatasetError(f"{DATASET}: cannot read a box from {path} "
                           f"(expected <bndbox> with xmin, ymin, xmax, ymax): {error}") from None
    if not boxes:
        raise DatasetError(f"{DATASET}: {path} has no <object><bndbox>")
    x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1)


def load(root) -> DatasetSplits:
    """Stanford Dogs train / test with the dogs' boxes and the breed names."""
    root = find_root(root, "train_list.mat", DATASET, LAYOUT)
    images = require(root / "Images", DATASET, LAYOUT)
    annotations = root / "Annotation"
    splits, breed_of = {}, {}
    for split in ("train", "test"):
        entries = _read_list(root / f"{split}_list.mat")
        splits[split] = [FGVCRecord(path=str(images / file), label=label,
                                    bbox=_box(annotations / annotation) if annotations.is_dir() else None)
                         for file, annotation, label in entries]
        require_files([r.path for r in splits[split]], DATASET, root / f"{split}_list.mat")
        for file, _, label in entries:
            breed_of.setdefault(label, Path(file).parent.name.split("-", 1)[-1].replace("_", " "))
    num_classes = max(breed_of) + 1
    if min(breed_of) < 0 or len(breed_of) != num_classes:
        raise DatasetError(f"{DATASET}: the labels of {root}/*_list.mat are not 1..{num_classes} "
                           f"(found {len(breed_of)} distinct, from {min(breed_of) + 1})")
    return build_fgvc_splits(DATASET, root, splits, [breed_of[label] for label in range(num_classes)], OFFICIAL)
