"""NABirds (Van Horn et al., CVPR 2015) as ``nabirds.tar.gz`` unpacks.

Layout: ``images/<class folder>/<file>.jpg``; ``images.txt`` (``<image id> <relative path>``),
``image_class_labels.txt`` (``<image id> <class id>``), ``train_test_split.txt`` (``<image id>
<1 = train>``), ``bounding_boxes.txt`` (``<image id> <x> <y> <w> <h>``, pixels), ``classes.txt``
(``<class id> <name>``, names with spaces) and ``hierarchy.txt`` (``<child class> <parent class>``).
Image ids are UUID strings.

``classes.txt`` lists all 1,011 nodes of the taxonomy in ``hierarchy.txt``, but images are labelled
with its 555 leaves only, whose ids are sparse: the classes are the ids that label an image, in
ascending order, mapped to 0..554 (the hierarchy itself is not needed and not read).
"""

from __future__ import annotations

from dcal.data.fgvc_splits import build_fgvc_splits
from dcal.data.layout import find_root, read_lines, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "nabirds"
LAYOUT = ("images/<class>/<file>.jpg, images.txt, image_class_labels.txt, train_test_split.txt, "
          "bounding_boxes.txt, classes.txt (and hierarchy.txt)")
OFFICIAL = {"train": {"images": 23929, "classes": 555}, "test": {"images": 24633, "classes": 555}}


def _table(root, name: str) -> dict[str, list[str]]:
    """``{image id: remaining fields}`` of one of the ``<id> ...`` text files."""
    path = root / name
    table = {}
    for line in read_lines(path, DATASET, LAYOUT):
        fields = line.split()
        if len(fields) < 2:
            raise DatasetError(f"{DATASET}: line '{line}' of {path} has no value after the image id")
        table[fields[0]] = fields[1:]
    return table


def _class_names(root) -> dict[int, str]:
    path = root / "classes.txt"
    names = {}
    for line in read_lines(path, DATASET, LAYOUT):
        fields = line.split(maxsplit=1)
        try:
            names[int(fields[0])] = fields[1] if len(fields) > 1 else fields[0]
        except ValueError:
            raise DatasetError(f"{DATASET}: line '{line}' of {path} is not '<class id> <name>'") from None
    return names


def load(root) -> DatasetSplits:
    """NABirds train / test with bounding boxes and the 555 leaf classes' names."""
    root = find_root(root, "image_class_labels.txt", DATASET, LAYOUT)
    images_dir = require(root / "images", DATASET, LAYOUT)
    paths, labels, is_train, boxes = (_table(root, name) for name in
                                      ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"))
    names = _class_names(root)
    try:
        class_of = {image_id: int(fields[0]) for image_id, fields in labels.items()}
    except ValueError:
        raise DatasetError(f"{DATASET}: {root / 'image_class_labels.txt'} has a class id that is not an integer") from None
    used = sorted({class_of[image_id] for image_id in paths if image_id in class_of})
    unnamed = [c for c in used if c not in names]
    if unnamed:
        raise DatasetError(f"{DATASET}: class id {unnamed[0]} of image_class_labels.txt is not in {root / 'classes.txt'}")
    label_of = {class_id: label for label, class_id in enumerate(used)}
    splits = {"train": [], "test": []}
    for image_id, (relative, *_) in paths.items():
        missing = [name for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train),
                                            ("bounding_boxes.txt", boxes)) if image_id not in table]
        if missing:
            raise DatasetError(f"{DATASET}: image id {image_id} of images.txt is missing from {', '.join(missing)}")
        try:
            x, y, w, h = (float(v) for v in boxes[image_id][:4])
        except ValueError:
            raise DatasetError(f"{DATASET}: the box of image id {image_id} in bounding_boxes.txt is not '<x> <y> <w> <h>'") from None
        record = FGVCRecord(path=str(images_dir / relative), label=label_of[class_of[image_id]], bbox=(x, y, w, h))
        splits["train" if is_train[image_id][0] == "1" else "test"].append(record)
    require_files([r.path for split in splits.values() for r in split], DATASET, root / "images.txt")
    return build_fgvc_splits(DATASET, root, splits, [names[c] for c in used], OFFICIAL)
