"""CUB-200-2011 (Wah et al., 2011) as ``CUB_200_2011.tgz`` unpacks.

Layout: ``images/<class folder>/<file>.jpg``; ``images.txt`` (``<id> <relative path>``),
``image_class_labels.txt`` (``<id> <class 1..200>``), ``train_test_split.txt`` (``<id> <1 = train>``),
``bounding_boxes.txt`` (``<id> <x> <y> <w> <h>``), ``classes.txt`` (``<class> <folder name>``).
The synthetic FGVC set (``dcal demo-data --task fgvc``) is written in this layout.
"""

from __future__ import annotations

from dcal.data.fgvc_splits import build_fgvc_splits
from dcal.data.layout import find_root, read_lines, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "cub200"
LAYOUT = ("images/<class>/<file>.jpg, images.txt, image_class_labels.txt, train_test_split.txt, "
          "bounding_boxes.txt, classes.txt")
OFFICIAL = {"train": {"images": 5994, "classes": 200}, "test": {"images": 5794, "classes": 200}}


def _table(root, name: str) -> dict[str, list[str]]:
    """``{image id: remaining fields}`` of one of CUB's ``<id> ...`` text files."""
    path = root / name
    table = {}
    for line in read_lines(path, DATASET, LAYOUT):
        fields = line.split()
        if len(fields) < 2:
            raise DatasetError(f"{DATASET}: line '{line}' of {path} has no value after the image id")
        table[fields[0]] = fields[1:]
    return table


def load(root) -> DatasetSplits:
    """CUB-200-2011 train / test with bounding boxes and class names."""
    root = find_root(root, "images.txt", DATASET, LAYOUT)
    images_dir = require(root / "images", DATASET, LAYOUT)
    paths, labels, is_train, boxes = (_table(root, name) for name in
                                      ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"))
    try:
        classes = sorted(((int(fields[0]), fields[1]) for fields in
                          (line.split(maxsplit=1) for line in read_lines(root / "classes.txt", DATASET, LAYOUT))))
    except (ValueError, IndexError):
        raise DatasetError(f"{DATASET}: {root / 'classes.txt'} has a line that is not '<class id> <folder name>'") from None
    class_names = [name.split(".", 1)[-1].replace("_", " ") for _, name in classes]
    class_ids = {str(number): label for label, (number, _) in enumerate(classes)}  # ids as written -> labels
    splits = {"train": [], "test": []}
    for image_id, (relative, *_) in paths.items():
        missing = [name for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train),
                                            ("bounding_boxes.txt", boxes)) if image_id not in table]
        if missing:
            raise DatasetError(f"{DATASET}: image id {image_id} of images.txt is missing from {', '.join(missing)}")
        label, flag = labels[image_id][0], is_train[image_id][0]
        if label not in class_ids:
            raise DatasetError(f"{DATASET}: image id {image_id} has class {label!r} in image_class_labels.txt, "
                               f"not one of the {len(class_ids)} class ids of classes.txt")
        if flag not in ("0", "1"):
            raise DatasetError(f"{DATASET}: image id {image_id} has {flag!r} in train_test_split.txt; expected 1 (train) or 0 (test)")
        try:
            x, y, w, h = (float(v) for v in boxes[image_id][:4])
        except ValueError:
            raise DatasetError(f"{DATASET}: image id {image_id}: bounding_boxes.txt holds {boxes[image_id]}, "
                               "not four numbers x y w h") from None
        record = FGVCRecord(path=str(images_dir / relative), label=class_ids[label], bbox=(x, y, w, h))
        splits["train" if flag == "1" else "test"].append(record)
    require_files([r.path for split in splits.values() for r in split], DATASET, root / "images.txt")
    return build_fgvc_splits(DATASET, root, splits, class_names, OFFICIAL)
