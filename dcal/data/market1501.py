"""Market-1501 (Zheng et al., ICCV 2015) as ``Market-1501-v15.09.15.zip`` unpacks.

Layout (:mod:`dcal.data.market_layout`): ``bounding_box_train/``, ``query/``, ``bounding_box_test/``
of ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``.  Identity −1 marks junk boxes, dropped from every split;
identity 0 marks distractors, kept in the gallery (they can only be false matches).
"""

from __future__ import annotations

from dcal.data.market_layout import load_market_layout
from dcal.data.records import DatasetSplits

DATASET = "market1501"
LAYOUT = "bounding_box_train/, query/, bounding_box_test/ holding <pid>_c<camera>... .jpg files"
OFFICIAL = {
    "train": {"images": 12936, "ids": 751, "cameras": 6},
    "query": {"images": 3368, "ids": 750, "cameras": 6},
    "gallery": {"images": 15913, "ids": 751, "cameras": 6},  # 750 test ids + distractors (0)
}
PIDS, CAMERAS = range(0, 1502), range(1, 7)  # 0: distractors; the test identities go up to 1501


def load(root) -> DatasetSplits:
    """Market-1501 train / query / gallery."""
    return load_market_layout(root, DATASET, OFFICIAL, LAYOUT, PIDS, CAMERAS)
