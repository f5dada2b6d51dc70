"""CUB-200-2011 (Wah et al., 2011) as ``CUB_200_2011.tgz`` unpacks.

Layout: ``images/<class folder>/<file>.jpg``; ``images.txt`` (``<id> <relative path>``),
``image_class_labels.txt`` (``<id> <class 1..200>``), ``train_test_split.txt`` (``<id> <1 = train>``),
``bounding_boxes.txt`` (``<id> <x> <y> <w> <h>``), ``classes.txt`` (``<class> <folder name>``).
The synthetic FGVC set (``dcal demo-data --task fgvc``) is written in this layout.
"""

from __future__ import annotations

from dcal.data.splits import build_fgvc_splits
from dcal.data.image_id_lists import read_listed_images
from dcal.data.layout import find_root, malformed_line, read_numbered_lines, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "cub200"
LAYOUT = ("images/<class>/<file>.jpg, images.txt, image_class_labels.txt, train_test_split.txt, "
          "bounding_boxes.txt, classes.txt")
OFFICIAL = {"train": {"images": 5994, "classes": 200}, "test": {"images": 5794, "classes": 200}}


def _read_classes(path) -> list[tuple[int, str]]:
    """``(class id, folder name)`` per line of ``classes.txt``."""
    classes = []
    for number, line in read_numbered_lines(path, DATASET, LAYOUT):
        fields = line.split(maxsplit=1)
        try:
            classes.append((int(fields[0]), fields[1]))
        except (ValueError, IndexError):
            raise malformed_line(DATASET, path, number, line, "<class id> <folder name>") from None
    return classes


def load(root) -> DatasetSplits:
    """CUB-200-2011 train / test with bounding boxes and class names."""
    root = find_root(root, "images.txt", DATASET, LAYOUT)
    images_dir = require(root / "images", DATASET, LAYOUT)
    listed = read_listed_images(root, DATASET, LAYOUT)
    classes = sorted(_read_classes(root / "classes.txt"))
    class_names = [name.split(".", 1)[-1].replace("_", " ") for _, name in classes]
    class_ids = {str(number): label for label, (number, _) in enumerate(classes)}  # ids as written -> labels
    splits = {"train": [], "test": []}
    for image in listed:
        if image.class_id not in class_ids:
            raise DatasetError(f"{DATASET}: image id {image.image_id} has class {image.class_id!r} in "
                               f"image_class_labels.txt, not one of the {len(class_ids)} class ids of classes.txt")
        record = FGVCRecord(path=str(images_dir / image.relative_path), label=class_ids[image.class_id], bbox=image.bbox)
        splits["train" if image.is_train else "test"].append(record)
    require_files([r.path for split in splits.values() for r in split], DATASET, root / "images.txt")
    return build_fgvc_splits(DATASET, root, splits, class_names, OFFICIAL)
