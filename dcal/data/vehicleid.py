"""PKU VehicleID (Liu et al., CVPR 2016) as ``VehicleID_V1.0`` unpacks.

Layout: ``image/<name>.jpg``; ``train_test_split/train_list.txt`` and
``train_test_split/test_list_<800|1600|2400>.txt``, lines ``<name> <vehicle id>`` (the image's file
name without ``.jpg``).  There are no camera ids (records have ``camid`` = ``NO_CAMERA``).

Option ``test_size`` (800, 1600 or 2400; default 800, the "small" test set) picks the test list.
The ``test`` split is that list; evaluation draws galleries of one image per vehicle from it, ten
times (:mod:`dcal.data.gallery_draws`, scored by :mod:`dcal.evaluation.vehicleid_protocol`).
``query`` and ``gallery`` are the first of those draws, for the commands that show or export one
query / gallery split.
"""

from __future__ import annotations

from pathlib import Path

from dcal.data.gallery_draws import gallery_draws
from dcal.data.layout import check_split_sizes, find_root, read_name_id_lines, require, require_files
from dcal.data.records import NO_CAMERA, DatasetSplits, ReIDRecord
from dcal.data.splits import relabel, summarize
from dcal.errors import DatasetError

DATASET = "vehicleid"
LAYOUT = ("image/<name>.jpg, train_test_split/train_list.txt, train_test_split/test_list_<800|1600|2400>.txt "
          "(lines '<name> <vehicle id>')")
TEST_SIZES = {800: 6493, 1600: 13377, 2400: 19777}  # vehicles: images in the distributed list


def read_list(list_path: Path, images: Path) -> list[ReIDRecord]:
    """A record (vehicle id as written, ``NO_CAMERA``) per line of a VehicleID list."""
    records = [ReIDRecord.as_written(str(images / f"{name}.jpg"), pid, NO_CAMERA)
               for _, _, name, pid in read_name_id_lines(list_path, DATASET, LAYOUT, "<name> <vehicle id>")]
    require_files([r.path for r in records], DATASET, list_path)
    return records


def load(root, test_size: int = 800) -> DatasetSplits:
    """VehicleID train / test (and the first draw's query / gallery) for one test size."""
    if test_size not in TEST_SIZES:
        raise DatasetError(f"{DATASET}: test_size {test_size!r} is not one of {', '.join(map(str, TEST_SIZES))}")
    root = find_root(root, "train_test_split", DATASET, LAYOUT)
    images = require(root / "image", DATASET, LAYOUT)
    lists = root / "train_test_split"
    train = read_list(lists / "train_list.txt", images)
    test = read_list(lists / f"test_list_{test_size}.txt", images)
    first_gallery = set(gallery_draws([r.pid for r in test], num_draws=1)[0].tolist())
    splits = {
        "train": relabel(train),
        "test": test,
        "query": [r for i, r in enumerate(test) if i not in first_gallery],
        "gallery": [r for i, r in enumerate(test) if i in first_gallery],
    }
    official = {"train": {"images": 113346, "ids": 13164},
                "test": {"images": TEST_SIZES[test_size], "ids": test_size}}
    mismatches = check_split_sizes(DATASET, root, summarize(splits), official)
    return DatasetSplits(name=DATASET, task="reid", root=root, splits=splits, num_classes=len({r.pid for r in splits["train"]}),
                         mismatches=mismatches, reid_protocol="gallery_draws")
