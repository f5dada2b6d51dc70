"""Validation splits for honest model selection: choose the checkpoint on data the test never sees.

Two sources (``data.val_split``, ``data.val_fraction``):

- an official split of the dataset (e.g. FGVC-Aircraft's ``val``, with ``data.train_split=train``);
- a hold-out of the training split, deterministic in ``train.seed``: FGVC takes the share of every
  class's images (stratified); Re-ID takes the share of the training *identities*, whole, so no
  identity is both trained on and retrieved, and the remaining identities are relabelled 0..n-1.

A Re-ID validation set is cut into a query and a gallery as Market-1501's are: one image of each
identity per camera is a query, the others are the gallery (:func:`query_gallery`).

:func:`with_validation` returns the dataset with the validation split(s) added under
:data:`FGVC_VAL` or :data:`REID_VAL_QUERY` / :data:`REID_VAL_GALLERY`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dcal.data.records import DatasetSplits, ReIDRecord
from dcal.data.splits import relabel
from dcal.errors import ConfigError

FGVC_VAL = "holdout_val"
REID_VAL_QUERY, REID_VAL_GALLERY = "holdout_val_query", "holdout_val_gallery"


def with_validation(splits: DatasetSplits, train_split: str, val_split: str | None, val_fraction: float | None,
                    seed: int) -> DatasetSplits:
    """``splits`` with a validation set added (and, for a hold-out, taken out of ``train_split``)."""
    if val_split is None and val_fraction is None:
        return splits
    if val_split is not None and val_fraction is not None:
        raise ConfigError("set one of data.val_split and data.val_fraction, not both")
    out = dict(splits.splits)
    num_classes = splits.num_classes
    if val_split is not None:
        if val_split not in splits.splits:
            raise ConfigError(f"data.val_split={val_split!r}: {splits.name} has splits {', '.join(splits.splits)}")
        val = splits.splits[val_split]
        shared = {r.path for r in val} & {r.path for r in splits.splits[train_split]}
        if shared:
            raise ConfigError(
                f"data.val_split={val_split!r} shares {len(shared)} images with the training split {train_split!r}; "
                f"train on a split without it (e.g. data.train_split=train)"
            )
    else:
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        hold = hold_out_identities if splits.task == "reid" else hold_out_stratified
        out[train_split], val = hold(splits.splits[train_split], val_fraction, seed)
        if splits.task == "reid":
            num_classes = len({r.pid for r in out[train_split]})
        if not val:
            raise ConfigError(
                f"data.val_fraction={val_fraction} holds out no image of {splits.name}'s {len(splits.splits[train_split])}"
            )
    if splits.task == "reid":
        out[REID_VAL_QUERY], out[REID_VAL_GALLERY] = query_gallery(val, seed)
    else:
        out[FGVC_VAL] = list(val)
    return dataclasses.replace(splits, splits=out, num_classes=num_classes)


def validation_split_names(task: str) -> tuple:
    """The keys :func:`with_validation` adds: FGVC one split, Re-ID its query and gallery."""
    return (FGVC_VAL,) if task == "fgvc" else (REID_VAL_QUERY, REID_VAL_GALLERY)


def hold_out_stratified(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(kept, held out)``: ``round(fraction · n)`` random images of each class of n images held out
    (at most n − 1, so every class is still trained on); both lists keep the records' order."""
    rng = np.random.default_rng([seed, 0x7A1])
    by_label: dict = {}
    for i, record in enumerate(records):
        by_label.setdefault(record.label, []).append(i)
    held = set()
    for label in sorted(by_label):
        members = by_label[label]
        count = min(int(round(fraction * len(members))), len(members) - 1)
        held.update(rng.permutation(members)[:count].tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def hold_out_identities(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(kept, held out)`` Re-ID training records: ``round(fraction · identities)`` random identities
    held out whole (their ``pid`` is then the dataset's ``original_pid``); the kept identities are
    relabelled 0..n-1 in the order of their original ids."""
    pids = sorted({r.pid for r in records})
    count = min(int(round(fraction * len(pids))), len(pids) - 1)
    held = set(np.random.default_rng([seed, 0x1D5]).permutation(pids)[:count].tolist())
    kept = relabel([r for r in records if r.pid not in held])
    val = [dataclasses.replace(r, pid=r.original_pid) for r in records if r.pid in held]
    return kept, val


def query_gallery(records: list[ReIDRecord], seed: int) -> tuple[list, list]:
    """One random image of each (identity, camera) as a query, every other image in the gallery."""
    rng = np.random.default_rng([seed, 0x9E7])
    groups: dict = {}
    for i, record in enumerate(records):
        groups.setdefault((record.pid, record.camid), []).append(i)
    queries = {members[int(rng.integers(len(members)))] for _, members in sorted(groups.items())}
    return [r for i, r in enumerate(records) if i in queries], [r for i, r in enumerate(records) if i not in queries]
