"""The FGVC set: *Battle for Wesnoth* unit sprites as an ``image_folder`` layout.

Input: the game's ``data/core/images/units/`` folder (Debian ``wesnoth-1.16-data``, GPL-2+).  Each
sub-folder holds the sprites of some units, one file per animation frame: ``white-mage.png`` (the unit
standing), ``white-mage-idle-3.png``, ``white-mage-defend.png``, ``mage-attack-magic1.png``...

- **Unit of a frame:** the longest *proper* prefix of its file stem, cut at a ``-``, that is itself a
  file stem of the same folder (``white-mage-idle-3`` → ``white-mage``); a stem with no such prefix is
  a unit's own standing frame.  ``+female`` variants are units of their own.  The class name is the
  folder path and the unit joined by ``.`` (``human-magi.white-mage``): some unit names recur in
  several folders.
- **Dropped frames:** those whose animation part has a word ``death``, ``dying``, ``die`` or
  ``teleport`` (the unit fading out or shown in pieces).
- **Classes:** units with at least ``min_frames`` frames left.
- **Animation group:** the animation part without its trailing number (``idle-3`` → ``idle``,
  ``attack-magic1`` → ``attack-magic``, the standing frame → ``""``).  Frames of one group are
  near-duplicates, so a class with several groups is split by whole groups: shuffled groups go to
  ``train`` until it holds ``train_frames`` frames, then to ``val`` until it holds ``val_frames``, the rest
  to ``test``; ``train`` and ``val`` keep a random ``train_frames`` / ``val_frames`` of their groups'
  frames and the others of those groups are left out (never moved to another split).  A class of one
  group is split by frames.
- **Images:** RGBA (or palette) sprites composited onto a plain background, saved as RGB PNG at their
  own size (mostly 72×72).

Everything is decided from sorted file names and ``seed``: the same input gives the same output, and
a unit's split does not depend on which other units are chosen.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composite import save_rgb

DROPPED_WORDS = frozenset({"death", "dying", "die", "teleport"})
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Frame:
    path: Path
    unit: str          # class name: "<folder>.<unit>"
    group: str         # animation group


def unit_of(stem: str, stems: set[str]) -> str:
    """The longest proper ``-``-prefix of ``stem`` among ``stems``, else ``stem`` itself."""
    parts = stem.split("-")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = "-".join(parts[:cut])
        if prefix in stems:
            return prefix
    return stem


def animation_group(animation: str) -> str:
    """``-idle-3`` → ``idle``; ``-attack-magic1`` → ``attack-magic``; ``""`` → ``""``."""
    return re.sub(r"[-_]?\d+$", "", animation.strip("-"))


def is_dropped(animation: str) -> bool:
    return bool(DROPPED_WORDS & set(re.split(r"[-_\d]+", animation.lower())))


def frames_by_unit(units_dir: Path, folders: list[str] | None = None) -> dict[str, list[Frame]]:
    """Every kept frame under ``units_dir`` by class name (sorted), from the given top-level
    ``folders`` only when given."""
    units_dir = Path(units_dir)
    by_folder: dict[Path, list[Path]] = {}
    for path in sorted(units_dir.rglob("*.png")):
        by_folder.setdefault(path.parent, []).append(path)
    classes: dict[str, list[Frame]] = {}
    for folder, paths in sorted(by_folder.items()):
        relative = folder.relative_to(units_dir)
        if folders is not None and (not relative.parts or relative.parts[0] not in folders):
            continue
        stems = {p.stem for p in paths}
        for path in paths:
            unit = unit_of(path.stem, stems)
            animation = path.stem[len(unit):]
            if is_dropped(animation):
                continue
            name = ".".join((*relative.parts, unit))
            classes.setdefault(name, []).append(Frame(path, name, animation_group(animation)))
    return dict(sorted(classes.items()))


def split_class(frames: list[Frame], train_frames: int, val_frames: int,
                rng: np.random.Generator) -> dict[str, list[Frame]]:
    """One class's frames by split (see the module docstring); ``train_frames=0`` keeps every frame
    of the training groups (half the frames of a one-group class)."""
    groups: dict[str, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(frame.group, []).append(frame)
    if len(groups) == 1:                       # one animation: split its frames
        order = [frames[i] for i in rng.permutation(len(frames))]
        n_train = train_frames or len(frames) // 2
        n_val = min(val_frames, max(0, len(frames) - n_train - 1))
        return {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                "test": order[n_train + n_val:]}
    names = [sorted(groups)[i] for i in rng.permutation(len(groups))]
    pools: dict[str, list[Frame]] = {split: [] for split in SPLITS}
    wanted = {"train": train_frames or len(frames), "val": val_frames}
    for index, name in enumerate(names):
        more = index < len(names) - 1          # the last group always goes to test
        if more and len(pools["train"]) < wanted["train"]:
            split = "train"
        elif more and len(pools["val"]) < wanted["val"]:
            split = "val"
        else:
            split = "test"
        pools[split] += groups[name]
    for split in ("train", "val"):
        if train_frames or split == "val":
            pool = pools[split]
            pools[split] = [pool[i] for i in sorted(rng.permutation(len(pool))[:wanted[split]])]
    return pools


def build(units_dir: Path, out: Path, *, train_frames: int = 5, val_frames: int = 5, min_frames: int = 10,
          folders: list[str] | None = None, max_classes: int | None = None, seed: int = 0,
          background=(255, 255, 255)) -> dict:
    """Write ``out/{train,val,test}/<class>/<frame>.png``; return the counts."""
    classes = {name: frames for name, frames in frames_by_unit(units_dir, folders).items()
               if len(frames) >= min_frames}
    if max_classes is not None and max_classes < len(classes):
        chosen = np.random.default_rng([seed, 1]).permutation(len(classes))[:max_classes]
        names = sorted(classes)
        classes = {names[i]: classes[names[i]] for i in sorted(chosen)}
    counts = {"classes": len(classes), "frames": sum(len(f) for f in classes.values()),
              **{split: 0 for split in SPLITS}, "left_out": 0, "image_sizes": {}}
    for name, frames in classes.items():
        rng = np.random.default_rng([seed, 2, zlib.crc32(name.encode())])   # a unit's split: the same in any subset
        pools = split_class(frames, train_frames, val_frames, rng)
        for split, members in pools.items():
            for frame in members:
                size = save_rgb(frame.path, out / split / name / frame.path.name, background)
                key = f"{size[0]}x{size[1]}"
                counts["image_sizes"][key] = counts["image_sizes"].get(key, 0) + 1
            counts[split] += len(members)
        counts["left_out"] += len(frames) - sum(len(m) for m in pools.values())
    counts["image_sizes"] = dict(sorted(counts["image_sizes"].items(), key=lambda kv: -kv[1])[:5])
    return counts
