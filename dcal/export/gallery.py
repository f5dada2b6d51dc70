"""A search gallery: the inference features of a folder of images (cached) or of a ``dcal extract`` file.

- A ``.npz`` written by ``dcal extract`` (:mod:`dcal.export.features`) is used as it is; its task
  must be the checkpoint's, and so must the checkpoint it records (its SHA-256) when it has one.
- A folder's images (recursively, every file with an image suffix) are run through the model once;
  their features are cached in ``FOLDER/.dcal-features-<checkpoint hash>.npz``, where the hash is
  the first 16 hex digits of the checkpoint file's SHA-256.  On the next search only the images
  that are new or whose size or modification time changed are extracted again; removed images are
  dropped from the cache.  The cache is a feature file like ``dcal extract`` writes (labels and
  cameras are -1), with each image's ``sizes`` and ``mtimes`` (ns) beside its relative ``paths``.

Features stay on disk: :class:`Gallery` streams them in chunks (:class:`~dcal.export.npz_array.NpzArray`),
and a cache update writes them batch by batch, so a gallery of a million images never has to fit
in memory.  An unreadable image raises :class:`~dcal.errors.DatasetError` naming it, unless
``skip_corrupt`` is set: then it is left out and listed in :attr:`Gallery.skipped` (the cache
remembers it with its size and modification time, so it is read again only once it has changed).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dcal.data.image_dataset import load_image
from dcal.errors import DatasetError
from dcal.export.features import batch_features, feature_description
from dcal.export.npz_array import NpzArray, spool_rows, write_npz
from dcal.data.image_files import images_in

CACHE_FORMAT = "dcal-gallery-cache-v1"


def cache_path(folder, checkpoint_sha256: str) -> Path:
    """The cache file of ``folder`` for the checkpoint whose SHA-256 is ``checkpoint_sha256``."""
    return Path(folder) / f".dcal-features-{checkpoint_sha256[:16]}.npz"


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Gallery:
    """Gallery images and their features (kept on disk in ``features``)."""

    source: Path  # the folder or .npz given
    paths: list  # per row, the image file as a string
    features: NpzArray
    task: str
    extracted: int = 0  # images run through the model for this search
    reused: int = 0  # images whose cached features were reused
    removed: int = 0  # cached images no longer in the folder
    skipped: list = field(default_factory=list)  # unreadable images left out (skip_corrupt)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


class _ImageFiles(Dataset):
    """Image files through the test transform; an unreadable one comes back as its error message."""

    def __init__(self, paths: Sequence, transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, self.transform(load_image(str(self.paths[index]))), None
        except DatasetError as error:
            return index, None, str(error)


def _collate(items):
    return items


def image_features(trained, paths: Sequence, *, batch_size: int = 64, num_workers: int = 0,
                   on_error: Optional[Callable[[int, str], None]] = None):
    """Batches ``(indices, features)`` of the images ``paths`` (features: (n, d) float32 arrays, as
    :func:`dcal.export.features.batch_features` computes them).  An unreadable image raises
    :class:`DatasetError`, or is passed to ``on_error(index, message)`` and left out."""
    loader = DataLoader(_ImageFiles(paths, trained.transform), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_collate)
    trained.model.eval()
    for items in loader:
        good = []
        for index, image, error in items:
            if error is None:
                good.append((index, image))
            elif on_error is None:
                raise DatasetError(error)
            else:
                on_error(index, error)
        if good:
            images = torch.stack([image for _, image in good]).to(trained.device)
            feats, _ = batch_features(trained.model, images)
            yield [index for index, _ in good], feats.numpy()


def gallery_from_npz(path, task: str, checkpoint, checkpoint_sha256: Optional[str] = None) -> Gallery:
    """The gallery of a ``dcal extract`` feature file; its task must be ``task`` (the checkpoint's)
    and, when the file records the SHA-256 of the checkpoint it was extracted with, that checkpoint
    must be ``checkpoint`` (whose SHA-256 is ``checkpoint_sha256``)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        if not {"features.npy", "paths.npy", "metadata.npy"} <= names:
            raise DatasetError(f"gallery {path} is not a feature file of dcal extract "
                               f"(expected arrays features, paths and metadata; found {', '.join(sorted(names)) or 'none'})")
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
            paths = [str(p) for p in data["paths"]]
        features = NpzArray(path, "features")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
        raise DatasetError(f"gallery {path} cannot be read as a .npz feature file of dcal extract: {error}") from None
    if metadata.get("task") != task:
        raise DatasetError(f"gallery {path} holds {metadata.get('task')} features, but {checkpoint} is a {task} "
                           f"checkpoint; extract the gallery with it (dcal extract) or search it with a {metadata.get('task')} checkpoint")
    recorded = metadata.get("checkpoint_sha256")
    if recorded and checkpoint_sha256 and recorded != checkpoint_sha256:
        raise DatasetError(f"gallery {path} holds features of another model: it was extracted with "
                           f"{metadata.get('checkpoint')} (SHA-256 {recorded[:16]}), not with {checkpoint} "
                           f"({checkpoint_sha256[:16]}); extract the gallery with this checkpoint (dcal extract)")
    if len(features.shape) != 2 or len(features) != len(paths):
        raise DatasetError(f"gallery {path}: expected features of shape (n, d) for its {len(paths)} paths, "
                           f"found {tuple(features.shape)}")
    return Gallery(path, paths, features, task)


def folder_gallery(trained, folder, *, skip_corrupt: bool = False, batch_size: int = 64, num_workers: int = 0,
                   checkpoint_sha256: Optional[str] = None) -> Gallery:
    """The gallery of the images under ``folder``, its cache brought up to date first."""
    folder = Path(folder)
    files = images_in(folder, "gallery folder")
    relative = [p.relative_to(folder).as_posix() for p in files]
    stats = [p.stat() for p in files]
    sizes = np.array([s.st_size for s in stats], dtype=np.int64)
    mtimes = np.array([s.st_mtime_ns for s in stats], dtype=np.int64)
    sha = checkpoint_sha256 or file_sha256(trained.path)
    cache = cache_path(folder, sha)
    old = _read_cache(cache, trained.task, sha)

    # Per image, the cache row that still describes it (-1: extract it), and the images already
    # known to be unreadable in their present state.
    source = np.full(len(files), -1, dtype=np.int64)
    known_bad = {}
    if old is not None:
        old_rows = {p: i for i, p in enumerate(old["paths"])}
        for i, rel in enumerate(relative):
            row = old_rows.get(rel)
            if row is not None and old["sizes"][row] == sizes[i] and old["mtimes"][row] == mtimes[i]:
                source[i] = row
            elif old["unreadable"].get(rel, (None, None, ""))[:2] == (sizes[i], mtimes[i]):
                known_bad[i] = old["unreadable"][rel][2]
    reused = int((source >= 0).sum())
    removed = 0 if old is None else len(set(old["paths"]) - set(relative))
    for i, message in known_bad.items():
        _unreadable(folder, message, skip_corrupt)
    skipped = {i: message for i, message in known_bad.items()}
    if old is not None and reused + len(known_bad) == len(files) and removed == 0 \
            and np.array_equal(source[source >= 0], np.arange(len(old["paths"]))):
        _report_skipped(skipped)
        kept = source >= 0
        return Gallery(folder, [str(files[i]) for i in np.flatnonzero(kept)], old["features"], trained.task,
                       reused=reused, skipped=[str(files[i]) for i in sorted(skipped)])

    kept = np.zeros(len(files), dtype=bool)

    def on_error(index: int, message: str) -> None:
        _unreadable(folder, message, skip_corrupt)
        skipped[index] = message

    def rows():
        """Feature rows in file order: cached ones read back, the others extracted batch by batch."""
        for start in range(0, len(files), batch_size):
            part = np.arange(start, min(start + batch_size, len(files)))
            block = {}
            new = np.array([i for i in part if source[i] < 0 and i not in known_bad], dtype=np.int64)
            if len(new):
                for indices, feats in image_features(trained, [files[i] for i in new], batch_size=batch_size,
                                                     num_workers=num_workers,
                                                     on_error=lambda i, m: on_error(int(new[i]), m)):
                    block.update(zip((int(new[i]) for i in indices), feats))
            cached = part[source[part] >= 0]
            if len(cached):
                block.update(zip(cached.tolist(), old["features"].take(source[cached])))
            order = sorted(block)
            kept[order] = True
            if order:
                yield np.stack([block[i] for i in order])

    with spool_rows(rows(), dir=folder) as spooled:
        if spooled.rows == 0:
            raise DatasetError(f"gallery folder {folder}: none of its {len(files)} images could be read")
        metadata = {"format": CACHE_FORMAT, "task": trained.task, "feature": feature_description(trained.model),
                    "checkpoint": str(trained.path), "checkpoint_sha256": sha, "folder": str(folder)}
        n, bad = int(kept.sum()), sorted(skipped)
        write_npz(cache, {
            "labels": np.full(n, -1, dtype=np.int64),
            "cameras": np.full(n, -1, dtype=np.int64),
            "paths": np.array([relative[i] for i in np.flatnonzero(kept)], dtype=str),
            "sizes": sizes[kept],
            "mtimes": mtimes[kept],
            "unreadable_paths": np.array([relative[i] for i in bad], dtype=str),
            "unreadable_sizes": sizes[bad] if bad else np.zeros(0, np.int64),
            "unreadable_mtimes": mtimes[bad] if bad else np.zeros(0, np.int64),
            "unreadable_errors": np.array([skipped[i] for i in bad], dtype=str),
            "metadata": np.asarray(json.dumps(metadata)),
        }, {"features": spooled})
    _report_skipped(skipped)
    return Gallery(folder, [str(files[i]) for i in np.flatnonzero(kept)], NpzArray(cache, "features"), trained.task,
                   extracted=n - reused, reused=reused, removed=removed, skipped=[str(files[i]) for i in bad])


def _unreadable(folder: Path, message: str, skip_corrupt: bool) -> None:
    if not skip_corrupt:
        raise DatasetError(f"gallery folder {folder}: {message}; --skip-corrupt (skip_corrupt=True) leaves "
                           f"unreadable images out")


def _report_skipped(skipped: dict) -> None:
    for message in skipped.values():
        print(f"skipped an unreadable gallery image: {message}", file=sys.stderr, flush=True)


def _read_cache(path: Path, task: str, sha: str) -> Optional[dict]:
    """A cache's paths, sizes, mtimes and features, or ``None`` when there is none (or it does not
    belong to this checkpoint, or cannot be read: it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
            if metadata.get("format") != CACHE_FORMAT or metadata.get("checkpoint_sha256") != sha \
                    or metadata.get("task") != task:
                return None
            cache = {"paths": [str(p) for p in data["paths"]], "sizes": data["sizes"], "mtimes": data["mtimes"],
                     "unreadable": {str(p): (int(size), int(mtime), str(message)) for p, size, mtime, message in zip(
                         data["unreadable_paths"], data["unreadable_sizes"], data["unreadable_mtimes"],
                         data["unreadable_errors"])}}
        cache["features"] = NpzArray(path, "features")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as error:
        print(f"rebuilding the feature cache {path}: it cannot be read ({error})", file=sys.stderr, flush=True)
        return None
    return cache


def open_gallery(trained, path, *, skip_corrupt: bool = False, batch_size: int = 64, num_workers: int = 0) -> Gallery:
    """The gallery at ``path``: a folder of images (cached) or a ``.npz`` of ``dcal extract``."""
    path = Path(path)
    if path.is_dir():
        return folder_gallery(trained, path, skip_corrupt=skip_corrupt, batch_size=batch_size, num_workers=num_workers)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DatasetError(f"gallery {path}: expected a folder of images or a .npz feature file of dcal extract")
        return gallery_from_npz(path, trained.task, trained.path, file_sha256(trained.path))
    raise DatasetError(f"gallery {path} not found (expected a folder of images or a .npz feature file of dcal extract)")
