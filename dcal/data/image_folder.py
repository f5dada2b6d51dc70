"""A user's own FGVC data as one folder per class, torchvision ``ImageFolder`` style, per split.

Layout: ``train/<class>/<image>``, ``test/<class>/<image>`` and optionally ``val/<class>/<image>``.
Classes are the sorted folder names of ``train/``; a class folder in another split that ``train/``
lacks is an error.  Images are files with one of :data:`dcal.data.image_files.IMAGE_SUFFIXES` (any
case).  There are no official sizes to check and no boxes.
"""

from __future__ import annotations

from dcal.data.splits import build_fgvc_splits
from dcal.data.image_files import is_image
from dcal.data.layout import find_root, require
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "image_folder"
LAYOUT = "train/<class>/<image>, test/<class>/<image>, optionally val/<class>/<image>"


def load(root) -> DatasetSplits:
    """train / test (/ val) with class names from the folder names."""
    root = find_root(root, "train", DATASET, LAYOUT)
    require(root / "test", DATASET, LAYOUT)
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise DatasetError(f"{DATASET}: {root / 'train'} has no class folders; expected layout: {LAYOUT}")
    label_of = {name: label for label, name in enumerate(class_names)}
    splits = {}
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            continue
        records = []
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            if class_dir.name not in label_of:
                raise DatasetError(f"{DATASET}: class folder {class_dir} has no counterpart in {root / 'train'}")
            records += [FGVCRecord(path=str(path), label=label_of[class_dir.name])
                        for path in sorted(class_dir.iterdir()) if is_image(path)]
        splits[split] = records
    return build_fgvc_splits(DATASET, root, splits, class_names, official={})
