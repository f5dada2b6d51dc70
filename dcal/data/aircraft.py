"""FGVC-Aircraft (Maji et al., 2013) as ``fgvc-aircraft-2013b.tar.gz`` unpacks.

Layout: ``data/images/<id>.jpg``; ``data/images_<level>_<split>.txt`` with lines ``<id> <name>``
(names may contain spaces) for level ∈ {variant, family, manufacturer} and split ∈ {train, val,
trainval, test}; ``data/<level>s.txt`` lists the class names (variants.txt, families.txt,
manufacturers.txt); ``data/images_box.txt`` (``<id> xmin ymin xmax ymax``, 1-based) if present.

Options: ``level`` (default ``"variant"``, 100 classes; ``"family"`` 70; ``"manufacturer"`` 30) and
``train_split`` (default ``"trainval"`` as the paper; ``"train"`` keeps ``val`` for model selection).
Every image carries a 20-pixel copyright banner at the bottom: records have ``crop_bottom=20``, and
:func:`dcal.data.image_dataset.load_image` removes it.
"""

from __future__ import annotations

from dcal.data.splits import build_fgvc_splits
from dcal.data.layout import find_root, malformed_line, read_lines, read_numbered_lines, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "aircraft"
LAYOUT = ("data/images/<id>.jpg, data/images_<variant|family|manufacturer>_<train|val|trainval|test>.txt, "
          "data/<variants|families|manufacturers>.txt")
LEVELS = {"variant": ("variants.txt", 100), "family": ("families.txt", 70), "manufacturer": ("manufacturers.txt", 30)}
SPLITS = ("train", "val", "trainval", "test")
SPLIT_IMAGES = {"train": 3334, "val": 3333, "trainval": 6667, "test": 3333}
BANNER_ROWS = 20


def _read_split(path) -> list[tuple[str, str]]:
    """``(image id, class name)`` per line of an ``images_<level>_<split>.txt``."""
    entries = []
    for number, line in read_numbered_lines(path, DATASET, LAYOUT):
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise malformed_line(DATASET, path, number, line, "<image id> <class name>")
        entries.append((fields[0], fields[1]))
    return entries


def _boxes(data) -> dict:
    """``{image id: (x, y, w, h)}``, 0-based, from ``images_box.txt`` (1-based corners), if present."""
    path = data / "images_box.txt"
    if not path.exists():
        return {}
    boxes = {}
    for number, line in read_numbered_lines(path, DATASET, LAYOUT):
        fields = line.split()
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[1:5])
        except ValueError:
            raise malformed_line(DATASET, path, number, line, "<image id> <xmin> <ymin> <xmax> <ymax>") from None
        boxes[fields[0]] = (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1)
    return boxes


def load(root, level: str = "variant", train_split: str = "trainval") -> DatasetSplits:
    """FGVC-Aircraft train / val / trainval / test at the chosen label level."""
    if level not in LEVELS:
        raise DatasetError(f"{DATASET}: level '{level}' is not one of {', '.join(LEVELS)}")
    if train_split not in ("train", "trainval"):
        raise DatasetError(f"{DATASET}: train_split '{train_split}' is not one of train, trainval")
    root = find_root(root, "data/images", DATASET, LAYOUT)
    data = require(root / "data", DATASET, LAYOUT)
    images = require(data / "images", DATASET, LAYOUT)
    names_file, official_classes = LEVELS[level]
    lists = {}
    for split in SPLITS:
        lists[split] = _read_split(data / f"images_{level}_{split}.txt")
    if (data / names_file).exists():
        class_names = read_lines(data / names_file, DATASET, LAYOUT)
    else:
        class_names = sorted({name for entries in lists.values() for _, name in entries})
    label_of = {name: label for label, name in enumerate(class_names)}
    boxes = _boxes(data)
    splits = {}
    for split, entries in lists.items():
        unknown = [name for _, name in entries if name not in label_of]
        if unknown:
            raise DatasetError(f"{DATASET}: class '{unknown[0]}' in images_{level}_{split}.txt is not in {data / names_file}")
        splits[split] = [FGVCRecord(path=str(images / f"{image_id}.jpg"), label=label_of[name],
                                    bbox=boxes.get(image_id), crop_bottom=BANNER_ROWS) for image_id, name in entries]
    require_files([r.path for split in splits.values() for r in split], DATASET, data / f"images_{level}_*.txt")
    official = {split: {"images": n, "classes": official_classes} for split, n in SPLIT_IMAGES.items()}
    return build_fgvc_splits(DATASET, root, splits, class_names, official, train_split=train_split)
