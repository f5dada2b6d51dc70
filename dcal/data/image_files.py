"""Image files named by a user: which suffixes count as images, folders expanded to the images in
them, and reading them as RGB."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dcal.data.image_dataset import load_image
from dcal.errors import DatasetError

#: What counts as an image in a user's folders (``image_folder``, ``reid_folder``, the folders given to
#: ``dcal predict``, ``search`` or ``visualize``): the suffixes of the formats Pillow opens that image datasets are distributed
#: in — JPEG (most), PNG (CUHK03), BMP (VIPeR), GIF, TIFF, WebP and PPM/PGM.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image(path: Path) -> bool:
    """A file whose suffix (any case) is one of :data:`IMAGE_SUFFIXES`."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def images_in(folder, what: str = "folder") -> list[Path]:
    """The image files under ``folder``, recursively and sorted; none is a :class:`DatasetError`
    (``what`` names the folder's role in the message, e.g. ``"gallery folder"``)."""
    folder = Path(folder)
    found = sorted(p for p in folder.rglob("*") if is_image(p))
    if not found:
        raise DatasetError(f"{what} {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return found


def image_paths(inputs: Sequence) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders expanded to their images (sorted,
    recursively).  Raises :class:`DatasetError` for a path that does not exist or a folder without images."""
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(images_in(item))
        elif item.is_file():
            paths.append(item)
        else:
            raise DatasetError(f"image {item} not found")
    return paths


def load_images(paths: Sequence) -> list:
    """The RGB images at ``paths``; an unreadable one raises :class:`DatasetError` naming it."""
    return [load_image(str(path)) for path in paths]
