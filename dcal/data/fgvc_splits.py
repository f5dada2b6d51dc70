"""What every FGVC parser shares: assembling :class:`~dcal.data.records.DatasetSplits` and checking
its sizes against the official ones."""

from __future__ import annotations

from pathlib import Path

from dcal.data.layout import check_split_sizes
from dcal.data.records import DatasetSplits
from dcal.data.split_summary import summarize
from dcal.errors import DatasetError


def build_fgvc_splits(name: str, root: Path, splits: dict, class_names, official: dict,
                      train_split: str = "train") -> DatasetSplits:
    """The :class:`DatasetSplits` of FGVC record lists, checked against ``official``."""
    mismatches = check_split_sizes(name, root, summarize(splits), official)
    num_classes = len(class_names) if class_names is not None else len({r.label for r in splits[train_split]})
    for split, records in splits.items():  # a class id outside the dataset's classes is an error, not a new class
        bad = next((r for r in records if not 0 <= r.label < num_classes), None)
        if bad is not None:
            raise DatasetError(f"{name}: {bad.path} ({split}) has class label {bad.label + 1} (1-based), "
                               f"outside the dataset's {num_classes} classes")
    return DatasetSplits(name=name, task="fgvc", root=root, splits=splits, num_classes=num_classes,
                         class_names=class_names, train_split=train_split, mismatches=mismatches)
