"""MSMT17 (Wei et al., CVPR 2018) as ``MSMT17_V1`` (or ``MSMT17_V2``) unpacks.

Layout: V1 ``train/``, ``test/``; V2 ``mask_train_v2/``, ``mask_test_v2/``; both with
``list_train.txt``, ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt`` whose lines are
``<path relative to the train or test folder> <pid>``.  The camera is the third ``_`` field of the
file name (``0000_000_01_0303morning_0015_0.jpg`` is camera 1).

``include_val`` (default True, as TransReID) adds the ``list_val.txt`` images to training; torchreid
and fast-reid leave them out (``include_val=False``).  Val identities are training identities.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import find_root, read_name_id_lines, require, require_files
from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.splits import build_reid_splits, check_identifiers
from dcal.errors import DatasetError

DATASET = "msmt17"
LAYOUT = ("train/ and test/ (V1) or mask_train_v2/ and mask_test_v2/ (V2), with list_train.txt, "
          "list_val.txt, list_query.txt, list_gallery.txt (lines '<relative path> <pid>')")
FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
OFFICIAL_TRAIN, OFFICIAL_VAL = 30248, 2373
OFFICIAL = {
    "query": {"images": 11659, "ids": 3060, "cameras": 15},
    "gallery": {"images": 82161, "ids": 3060, "cameras": 15},
}


def read_list(list_path: Path, folder: Path) -> list[ReIDRecord]:
    """A record (identity as written, 0-based camera) for each line of an MSMT17 list file."""
    records = []
    for number, line, relative, pid in read_name_id_lines(list_path, DATASET, LAYOUT, "<relative path> <pid>"):
        try:
            camera = int(Path(relative).name.split("_")[2])
        except (IndexError, ValueError):
            raise DatasetError(f"{DATASET}: line {number} of {list_path}: file name {Path(relative).name} is not "
                               "'<pid>_<index>_<camera>_...'") from None
        check_identifiers(f"line {number} of {list_path} ('{line}')", DATASET, pid, camera, pids=range(0, 3060),
                          cameras=range(1, 16))
        records.append(ReIDRecord.as_written(str(folder / relative), pid, camera - 1))
    require_files([r.path for r in records], DATASET, list_path)
    return records


def load(root, include_val: bool = True) -> DatasetSplits:
    """MSMT17 train (+ val) / query / gallery."""
    root = find_root(root, "list_query.txt", DATASET, LAYOUT)
    version = "V2" if (root / FOLDERS["V2"][0]).is_dir() and not (root / FOLDERS["V1"][0]).is_dir() else "V1"
    train_dir, test_dir = (require(root / name, DATASET, LAYOUT) for name in FOLDERS[version])
    train = read_list(root / "list_train.txt", train_dir)
    if include_val:
        train += read_list(root / "list_val.txt", train_dir)
    query = read_list(root / "list_query.txt", test_dir)
    gallery = read_list(root / "list_gallery.txt", test_dir)
    train_images = OFFICIAL_TRAIN + (OFFICIAL_VAL if include_val else 0)
    official = {"train": {"images": train_images, "ids": 1041, "cameras": 15}, **OFFICIAL}
    return build_reid_splits(DATASET, root, train, query, gallery, official)
