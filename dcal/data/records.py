"""Named records for one image of a dataset split, and the parsed dataset as a whole.

Unlike torchreid's positional ``(img, pid, camid, dsetid)`` tuples, every parser reads and returns
frozen dataclasses whose fields say what they are.

Coordinates are pixels of the image file as stored, origin at the top-left corner, 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

Box = tuple  # (x, y, w, h) in pixels, floats


@dataclass(frozen=True)
class FGVCRecord:
    """One image of a fine-grained categorisation dataset.

    - ``path``: absolute path of the image file.
    - ``label``: class index, 0..num_classes-1.
    - ``bbox``: the object's box ``(x, y, w, h)`` where the dataset provides one (CUB, Stanford Cars,
      FGVC-Aircraft's ``images_box.txt``, the synthetic set's discriminative part), else ``None``.
    - ``crop_bottom``: rows removed from the bottom of the image when it is loaded
      (:func:`dcal.data.image_dataset.load_image`); FGVC-Aircraft sets 20 for its copyright banner.
      Boxes stay valid after the crop because it keeps the top-left origin.
    """

    path: str
    label: int
    bbox: Optional[Box] = None
    crop_bottom: int = 0


@dataclass(frozen=True)
class ReIDRecord:
    """One image of a re-identification dataset.

    - ``path``: absolute path of the image file.
    - ``pid``: the identity used by the code. In the training split it is relabelled to
      0..num_ids-1 (sorted original ids, as torchreid's ``relabel=True``) so it is the classifier
      target; in query and gallery it equals ``original_pid`` (0 = Market-1501 distractor).
    - ``camid``: 0-based camera index (the camera number in the file name minus 1, as torchreid),
      or :data:`NO_CAMERA` where the dataset has no camera ids (VehicleID, a ``reid_list`` without a
      camera column, ``reid_folder``); evaluation then leaves out only each query's own image
      (:mod:`dcal.evaluation.camera_filter`).
    - ``original_pid``: the identity exactly as the dataset writes it.
    """

    path: str
    pid: int
    camid: int
    original_pid: int

    @classmethod
    def as_written(cls, path: str, pid: int, camid: int) -> "ReIDRecord":
        """A record whose ``pid`` is the identity as the dataset writes it (``original_pid``): what
        a parser reads; :func:`dcal.data.splits.relabel` renumbers the training split's."""
        return cls(path=path, pid=pid, camid=camid, original_pid=pid)


#: ``ReIDRecord.camid`` of an image whose camera is not known.
NO_CAMERA = -1

Record = Union[FGVCRecord, ReIDRecord]


@dataclass
class DatasetSplits:
    """A parsed dataset: its splits of records and what the model needs to know about them.

    - ``name``: the catalogue name (``cub200``, ``market1501``, ...).
    - ``task``: ``"fgvc"`` or ``"reid"``.
    - ``root``: the dataset folder found under the root given (:func:`dcal.data.layout.find_root`).
    - ``splits``: records per split. FGVC: ``train`` and ``test`` (FGVC-Aircraft also ``val`` and
      ``trainval``); Re-ID: ``train``, ``query``, ``gallery`` (VehicleID also ``test``).
    - ``train_split``: the key of the split the model trains on (``"train"`` everywhere except
      FGVC-Aircraft, whose default is ``"trainval"`` as in the paper).
    - ``class_names``: class names by label where the dataset has them, else ``None``.
    - ``num_classes``: FGVC classes, or the number of Re-ID training identities.
    - ``mismatches``: human-readable differences from the official split sizes (each was also
      issued as a :class:`SplitSizeWarning`).
    - ``reid_protocol``: how Re-ID is evaluated: ``"fixed"``, the ``query`` split against the
      ``gallery`` split; ``"gallery_draws"`` (VehicleID), galleries of one random image per identity
      drawn repeatedly from the ``test`` split (:mod:`dcal.data.gallery_draws`).
    """

    name: str
    task: str
    root: Path
    splits: dict
    num_classes: int
    class_names: Optional[list] = None
    train_split: str = "train"
    mismatches: list = field(default_factory=list)
    reid_protocol: str = "fixed"

    @property
    def eval_splits(self) -> tuple:
        """The split names evaluation reads: ``("test",)`` for FGVC and for Re-ID with gallery draws,
        ``("query", "gallery")`` for other Re-ID sets."""
        return ("test",) if self.task == "fgvc" or self.reid_protocol == "gallery_draws" else ("query", "gallery")
