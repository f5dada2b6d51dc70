"""The image lists that CUB-200-2011 and NABirds share: ``images.txt`` (``<id> <relative path>``),
``image_class_labels.txt`` (``<id> <class id>``), ``train_test_split.txt`` (``<id> <1 = train, 0 =
test>``) and ``bounding_boxes.txt`` (``<id> <x> <y> <w> <h>``, pixels), all keyed by image id."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from dcal.data.layout import read_id_table
from dcal.errors import DatasetError

LISTS = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


class ListedImage(NamedTuple):
    image_id: str
    relative_path: str
    class_id: str  # as written in image_class_labels.txt
    is_train: bool
    bbox: tuple  # (x, y, w, h)


def read_listed_images(root: Path, dataset: str, layout: str) -> list[ListedImage]:
    """Every image of ``images.txt`` in file order, with its class id, split and box; an image id
    missing from another list, a split flag other than 0/1 or a malformed box is a DatasetError."""
    paths, labels, is_train, boxes = (read_id_table(root / name, dataset, layout) for name in LISTS)
    images = []
    for image_id, (relative, *_) in paths.items():
        missing = [name for name, table in zip(LISTS[1:], (labels, is_train, boxes)) if image_id not in table]
        if missing:
            raise DatasetError(f"{dataset}: image id {image_id} of images.txt is missing from {', '.join(missing)}")
        flag = is_train[image_id][0]
        if flag not in ("0", "1"):
            raise DatasetError(f"{dataset}: image id {image_id} has {flag!r} in train_test_split.txt; "
                               "expected 1 (train) or 0 (test)")
        try:
            box = tuple(float(v) for v in boxes[image_id][:4])
        except ValueError:
            box = ()
        if len(box) != 4:
            raise DatasetError(f"{dataset}: image id {image_id}: bounding_boxes.txt holds {boxes[image_id]}, "
                               "not four numbers x y w h")
        images.append(ListedImage(image_id, relative, labels[image_id][0], flag == "1", box))
    return images
