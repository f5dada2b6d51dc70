"""Stanford Cars (Krause et al., 3dRR 2013) in either of its two distributed layouts.

- Devkit layout (``cars_train.tgz``, ``cars_test.tgz``, ``car_devkit.tgz`` and the later
  ``cars_test_annos_withlabels.mat``): ``cars_train/<fname>``, ``cars_test/<fname>``,
  ``devkit/cars_train_annos.mat``, ``devkit/cars_meta.mat``, ``cars_test_annos_withlabels.mat``
  (in the root or in ``devkit/``).  Annotation structs have fields ``bbox_x1, bbox_y1, bbox_x2,
  bbox_y2, class, fname``; ``cars_meta.mat`` holds ``class_names``.
- Combined layout (``car_ims.tgz`` + ``cars_annos.mat``): ``car_ims/<file>`` and ``cars_annos.mat``
  with ``annotations`` (``relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, test``) and
  ``class_names``.

Boxes are MATLAB's 1-based inclusive pixel indices; records hold ``(x1 − 1, y1 − 1, x2 − x1 + 1,
y2 − y1 + 1)``.  Classes are 1-based in the files, 0-based in the records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from dcal.data.splits import build_fgvc_splits
from dcal.data.layout import DEMO_HINT, require, require_files
from dcal.data.records import DatasetSplits, FGVCRecord
from dcal.errors import DatasetError

DATASET = "stanford_cars"
LAYOUT = ("either cars_train/, cars_test/, devkit/cars_train_annos.mat, devkit/cars_meta.mat, "
          "cars_test_annos_withlabels.mat; or car_ims/ and cars_annos.mat")
OFFICIAL = {"train": {"images": 8144, "classes": 196}, "test": {"images": 8041, "classes": 196}}


def _load_mat(path: Path) -> dict:
    require(path, DATASET, LAYOUT)
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True)
    except Exception as error:  # scipy raises several unrelated types for a damaged file
        raise DatasetError(f"{DATASET}: cannot read {path} as a MATLAB file: {error}") from None


def _annotations(mat: dict, path: Path, fields: tuple) -> list[dict]:
    """The ``annotations`` struct array as a list of ``{field: value}``, checking the field names."""
    annotations = np.atleast_1d(mat.get("annotations", np.array([])))
    names = annotations.dtype.names or ()
    missing = [name for name in fields if name not in names]
    if "annotations" not in mat or missing:
        raise DatasetError(f"{DATASET}: {path} has no 'annotations' struct with fields {', '.join(fields)} "
                           f"(missing: {', '.join(missing) or 'annotations'})")
    return [{name: entry[name] for name in fields} for entry in annotations]


def _box(entry: dict) -> tuple:
    x1, y1, x2, y2 = (float(entry[f"bbox_{k}"]) for k in ("x1", "y1", "x2", "y2"))
    return (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1)


def _class_names(mat: dict, path: Path) -> list[str]:
    if "class_names" not in mat:
        raise DatasetError(f"{DATASET}: {path} has no 'class_names'")
    return [str(name) for name in np.atleast_1d(mat["class_names"])]


def _devkit(root: Path) -> DatasetSplits:
    box_fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    meta_path = root / "devkit" / "cars_meta.mat"
    class_names = _class_names(_load_mat(meta_path), meta_path)
    test_path = root / "cars_test_annos_withlabels.mat"
    if not test_path.exists() and (root / "devkit" / test_path.name).exists():
        test_path = root / "devkit" / test_path.name
    splits = {}
    for split, folder, annos in (("train", "cars_train", root / "devkit" / "cars_train_annos.mat"),
                                 ("test", "cars_test", test_path)):
        images = require(root / folder, DATASET, LAYOUT)
        entries = _annotations(_load_mat(annos), annos, box_fields)
        splits[split] = [FGVCRecord(path=str(images / str(e["fname"])), label=int(e["class"]) - 1, bbox=_box(e))
                         for e in entries]
        require_files([r.path for r in splits[split]], DATASET, annos)
    return build_fgvc_splits(DATASET, root, splits, class_names, OFFICIAL)


def _combined(root: Path) -> DatasetSplits:
    annos = root / "cars_annos.mat"
    mat = _load_mat(annos)
    entries = _annotations(mat, annos, ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"))
    splits = {"train": [], "test": []}
    for e in entries:
        record = FGVCRecord(path=str(root / str(e["relative_im_path"])), label=int(e["class"]) - 1, bbox=_box(e))
        if int(e["test"]) not in (0, 1):
            raise DatasetError(f"{DATASET}: {annos}: {e['relative_im_path']} has test={e['test']}; expected 1 (test) or 0 (train)")
        splits["test" if int(e["test"]) else "train"].append(record)
    require_files([r.path for split in splits.values() for r in split], DATASET, annos)
    return build_fgvc_splits(DATASET, root, splits, _class_names(mat, annos), OFFICIAL)


def load(root) -> DatasetSplits:
    """Stanford Cars train / test from whichever layout ``root`` holds."""
    root = Path(root).expanduser()
    for candidate in [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []):
        if (candidate / "cars_annos.mat").exists():
            return _combined(candidate.resolve())
        if (candidate / "devkit").is_dir():
            return _devkit(candidate.resolve())
    raise DatasetError(f"{DATASET}: no Stanford Cars layout found at {root}; expected {LAYOUT} {DEMO_HINT}")
