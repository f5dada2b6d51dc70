"""The annotation lists keyed by image id that CUB-200-2011 introduced and NABirds reuses in the same
format: ``images.txt`` (``<id> <relative path>``), ``image_class_labels.txt`` (``<id> <class id>``),
``train_test_split.txt`` (``<id> <1 = train, 0 = test>``) and ``bounding_boxes.txt`` (``<id> <x> <y>
<w> <h>``, pixels).  :mod:`dcal.data.cub200` and :mod:`dcal.data.nabirds` read them here and each
adds its own ``classes.txt``."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from dcal.data.layout import malformed_line, read_numbered_lines
from dcal.errors import DatasetError

#: Each list and the form of its lines.
LISTS = {
    "images.txt": "<image id> <relative path>",
    "image_class_labels.txt": "<image id> <class id>",
    "train_test_split.txt": "<image id> <1 = train, 0 = test>",
    "bounding_boxes.txt": "<image id> <x> <y> <w> <h>",
}


class ListedImage(NamedTuple):
    image_id: str
    relative_path: str
    class_id: str  # as written in image_class_labels.txt
    is_train: bool
    bbox: tuple  # (x, y, w, h)


class ListLine(NamedTuple):
    """A line of one of the :data:`LISTS`: its number in the file (1-based), its text, and the fields
    after the image id."""

    number: int
    text: str
    fields: list


def read_id_table(path: Path, dataset: str, layout: str) -> dict[str, ListLine]:
    """``{image id: its line}`` of one of the :data:`LISTS`; a line with nothing after the id is an error."""
    table = {}
    for number, line in read_numbered_lines(path, dataset, layout):
        image_id, *fields = line.split()
        if not fields:
            raise malformed_line(dataset, path, number, line, LISTS[path.name])
        table[image_id] = ListLine(number, line, fields)
    return table


def read_listed_images(root: Path, dataset: str, layout: str) -> list[ListedImage]:
    """Every image of ``images.txt`` in file order, with its class id, split and box; an image id
    missing from another list, a split flag other than 0/1 or a malformed box is a DatasetError."""
    paths, labels, is_train, boxes = (read_id_table(root / name, dataset, layout) for name in LISTS)
    images = []
    for image_id, path_line in paths.items():
        missing = [name for name, table in zip(list(LISTS)[1:], (labels, is_train, boxes)) if image_id not in table]
        if missing:
            raise DatasetError(f"{dataset}: image id {image_id} of images.txt is missing from {', '.join(missing)}")
        flag = is_train[image_id]
        if flag.fields[0] not in ("0", "1"):
            raise DatasetError(f"{dataset}: image id {image_id} has {flag.fields[0]!r} in train_test_split.txt; expected "
                               f"1 (train) or 0 (test), at line {flag.number} of {root / 'train_test_split.txt'}")
        box_line = boxes[image_id]
        try:
            box = tuple(float(v) for v in box_line.fields[:4])
        except ValueError:
            box = ()
        if len(box) != 4:
            raise malformed_line(dataset, root / "bounding_boxes.txt", box_line.number, box_line.text,
                                 LISTS["bounding_boxes.txt"])
        images.append(ListedImage(image_id, path_line.fields[0], labels[image_id].fields[0], flag.fields[0] == "1", box))
    return images
