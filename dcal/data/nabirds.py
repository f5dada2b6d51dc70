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

from dcal.data.splits import build_fgvc_splits
from dcal.data.image_id_lists import read_listed_images
from dcal.data.layout import find_root, malformed_line, read_numbered_lines, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "nabirds"
LAYOUT = ("images/<class>/<file>.jpg, images.txt, image_class_labels.txt, train_test_split.txt, "
          "bounding_boxes.txt, classes.txt (and hierarchy.txt)")
OFFICIAL = {"train": {"images": 23929, "classes": 555}, "test": {"images": 24633, "classes": 555}}


def _class_names(root) -> dict[int, str]:
    path = root / "classes.txt"
    names = {}
    for number, line in read_numbered_lines(path, DATASET, LAYOUT):
        fields = line.split(maxsplit=1)
        try:
            names[int(fields[0])] = fields[1] if len(fields) > 1 else fields[0]
        except ValueError:
            raise malformed_line(DATASET, path, number, line, "<class id> <name>") from None
    return names


def load(root) -> DatasetSplits:
    """NABirds train / test with bounding boxes and the 555 leaf classes' names."""
    root = find_root(root, "image_class_labels.txt", DATASET, LAYOUT)
    images_dir = require(root / "images", DATASET, LAYOUT)
    listed = read_listed_images(root, DATASET, LAYOUT)
    names = _class_names(root)
    try:
        class_of = {image.image_id: int(image.class_id) for image in listed}
    except ValueError:
        raise DatasetError(f"{DATASET}: {root / 'image_class_labels.txt'} has a class id that is not an integer") from None
    used = sorted(set(class_of.values()))
    unnamed = [c for c in used if c not in names]
    if unnamed:
        raise DatasetError(f"{DATASET}: class id {unnamed[0]} of image_class_labels.txt is not in {root / 'classes.txt'}")
    label_of = {class_id: label for label, class_id in enumerate(used)}
    splits = {"train": [], "test": []}
    for image in listed:
        record = FGVCRecord(path=str(images_dir / image.relative_path), label=label_of[class_of[image.image_id]],
                            bbox=image.bbox)
        splits["train" if image.is_train else "test"].append(record)
    require_files([r.path for split in splits.values() for r in split], DATASET, root / "images.txt")
    return build_fgvc_splits(DATASET, root, splits, [names[c] for c in used], OFFICIAL)
