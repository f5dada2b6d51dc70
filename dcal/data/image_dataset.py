"""A torch ``Dataset`` over named records, and the image loader every part of dcal uses.

Items are dicts: ``{"image": Tensor, "target": int, "index": int}`` plus ``"camid"`` for Re-ID
records; ``target`` is the FGVC label or the (training-relabelled) Re-ID ``pid``; ``index`` is the
record's position, so predictions can be traced back to files.

A corrupt or unreadable image raises :class:`~dcal.errors.DatasetError` naming the file.  With
``skip_corrupt=True`` it is instead skipped: a :class:`CorruptImageWarning` naming the file is
issued, :attr:`ImageDataset.skipped` counts it (in the process that loaded it), and the item comes
back as ``{"skipped": path, "index": i}``.  Use :func:`collate_skipping_corrupt` as the
DataLoader's ``collate_fn``: it drops such items and lists their paths under ``batch["skipped"]``
(an empty list when none were dropped), so the training loop can count them across worker
processes and batches never contain silent zeros.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, default_collate

from dcal.data.records import ReIDRecord
from dcal.errors import DatasetError


class CorruptImageWarning(UserWarning):
    """An unreadable image was skipped (``skip_corrupt=True``)."""


class LargeImageWarning(UserWarning):
    """An image has more pixels than Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)
    but less than twice it: it is read (twice the limit is refused as unreadable)."""


def load_image(path: str, crop_bottom: int = 0) -> Image.Image:
    """The RGB image at ``path`` with ``crop_bottom`` rows removed (FGVC-Aircraft's banner).

    Raises :class:`~dcal.errors.DatasetError` naming the file if it cannot be decoded; Pillow's
    decompression-bomb warning becomes a :class:`LargeImageWarning` naming it.
    """
    try:
        opened, caught = _open_recording_warnings(path)
        with opened:
            image = to_rgb8(opened)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None
    for warning in caught:  # Pillow's warnings name no file: say which image, in dcal's words
        if issubclass(warning.category, Image.DecompressionBombWarning):
            warnings.warn(f"image {path} has {image.width * image.height} pixels ({image.width}x{image.height}), more "
                          f"than Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS}; it is read anyway",
                          LargeImageWarning, stacklevel=2)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if crop_bottom:
        if image.height <= crop_bottom:
            raise DatasetError(f"image {path} is {image.height} pixels high, too small to remove a {crop_bottom}-pixel banner")
        image = image.crop((0, 0, image.width, image.height - crop_bottom))
    return image


# warnings.catch_warnings swaps process-wide state (the filters and warnings.showwarning) and puts
# back what it found: two threads inside it at once can leave another thread's state installed for
# good, e.g. a command's warning printer replaced by Python's default.  Images are read on several
# threads (dcal.data.verify), so one thread at a time records; the decoding itself runs unlocked.
_RECORDING = threading.Lock()


def _open_recording_warnings(path: str) -> tuple[Image.Image, list]:
    """``Image.open(path)`` (the header only; Pillow's decompression-bomb check happens here) and the
    warnings it issued."""
    with _RECORDING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        return Image.open(path), caught


def to_rgb8(image: Image.Image) -> Image.Image:
    """``image`` in 8-bit RGB, whatever Pillow mode it was opened in.

    Pillow's own ``convert("RGB")`` clips 16-bit (``I;16*``), 32-bit integer (``I``) and float
    (``F``) grey levels at 255, which turns most of such an image white; those are scaled instead:
    16-bit by 255/65535; ``I`` likewise when its values fit 16 bits (as 16-bit PNG and TIFF often
    open), else from its minimum–maximum range; ``F`` from [0, 1] when its values lie there, else
    from its range.  Palette images with transparency go through RGBA (no Pillow warning); alpha is
    dropped.  Everything else (1, L, LA, P, RGBA, CMYK, YCbCr, LAB, HSV) is Pillow's conversion.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if mode.startswith("I;16") or (mode == "I" and 0 <= low and high <= 65535 and high > 255):
            scaled = values * (255 / 65535)
        elif mode == "I" and 0 <= low and high <= 255:
            scaled = values
        elif mode == "F" and 0 <= low and high <= 1:
            scaled = values * 255
        else:  # another range: stretch it over 0..255
            scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("P", "PA") and (mode == "PA" or "transparency" in image.info):
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def load_record_image(record) -> Image.Image:
    """:func:`load_image` for an FGVC or Re-ID record (applying an FGVC record's ``crop_bottom``)."""
    return load_image(record.path, getattr(record, "crop_bottom", 0))


class ImageDataset(Dataset):
    """Records → transformed image tensors with their targets."""

    def __init__(self, records: list, transform=None, skip_corrupt: bool = False):
        self.records = list(records)
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            image = load_record_image(record)
        except DatasetError as error:
            if not self.skip_corrupt:
                raise
            self.skipped += 1
            warnings.warn(f"skipping {error}", CorruptImageWarning, stacklevel=2)
            return {"skipped": record.path, "index": index}
        if self.transform is not None:
            image = self.transform(image)
        if isinstance(record, ReIDRecord):
            return {"image": image, "target": record.pid, "index": index, "camid": record.camid}
        return {"image": image, "target": record.label, "index": index}


def collate_skipping_corrupt(items: list) -> dict:
    """``default_collate`` of the readable items, with ``batch["skipped"]`` = paths of those dropped.

    Raises :class:`~dcal.errors.DatasetError` if every item of the batch was unreadable.
    """
    skipped = [item["skipped"] for item in items if "skipped" in item]
    good = [item for item in items if "skipped" not in item]
    if not good:
        raise DatasetError(f"every image of a batch was unreadable: {', '.join(skipped)}")
    batch = default_collate(good)
    batch["skipped"] = skipped
    return batch
