"""DukeMTMC-reID (Zheng et al., ICCV 2017) as ``DukeMTMC-reID.zip`` unpacks: Market-1501's layout
(:mod:`dcal.data.market_layout`: ``bounding_box_train/``, ``query/``, ``bounding_box_test/``) with
names like ``0001_c2_f0046182.jpg``."""

from __future__ import annotations

from dcal.data.market_layout import load_market_layout
from dcal.data.records import DatasetSplits

DATASET = "dukemtmc"
LAYOUT = "bounding_box_train/, query/, bounding_box_test/ holding <pid>_c<camera>_f<frame>.jpg files"
OFFICIAL = {
    "train": {"images": 16522, "ids": 702, "cameras": 8},
    "query": {"images": 2228, "ids": 702, "cameras": 8},
    "gallery": {"images": 17661, "ids": 1110, "cameras": 8},
}
PIDS, CAMERAS = range(0, 7141), range(1, 9)


def load(root) -> DatasetSplits:
    """DukeMTMC-reID train / query / gallery (identities 0..7140, cameras 1..8)."""
    return load_market_layout(root, DATASET, OFFICIAL, LAYOUT, PIDS, CAMERAS)
