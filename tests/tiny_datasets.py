"""Tiny image sets for the engine tests: a few dozen 32x32 images that a 2-block ViT learns in seconds.

FGVC (``image_folder`` layout): class c is a flat colour with a bright square in corner c, plus noise.
Re-ID (Market-1501 layout): identity i is a colour pair (top half / bottom half), seen by two cameras.
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcal.data.records import FGVCRecord

SIZE = 32
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200)]


def _image(rng, top, bottom=None, corner=None) -> Image.Image:
    pixels = np.empty((SIZE, SIZE, 3), np.float64)
    pixels[: SIZE // 2] = top
    pixels[SIZE // 2:] = top if bottom is None else bottom
    if corner is not None:
        y, x = divmod(corner, 2)
        pixels[y * 20: y * 20 + 12, x * 20: x * 20 + 12] = 255
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_tiny_fgvc(root, classes: int = 4, train_per_class: int = 16, test_per_class: int = 6) -> Path:
    root = Path(root)
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _image(rng, COLOURS[c % len(COLOURS)], corner=c % 4).save(folder / f"{i:03d}.png")
    return root


def write_tiny_reid(root, ids: int = 6, per_camera: int = 4) -> Path:
    root = Path(root)
    rng = np.random.default_rng(0)
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    n = 0
    for pid in range(1, ids + 1):
        top, bottom = COLOURS[pid % len(COLOURS)], COLOURS[(pid * 2 + 1) % len(COLOURS)]
        for cam in (1, 2):
            for i in range(per_camera):
                n += 1
                name = f"{pid:04d}_c{cam}s1_{n:06d}_00.jpg"
                _image(rng, top, bottom).save(root / "bounding_box_train" / name)
                test_pid = pid + 100
                _image(rng, bottom, top).save(root / ("query" if i == 0 else "bounding_box_test") / f"{test_pid:04d}_c{cam}s1_{n:06d}_00.jpg")
    sizes = {"train": {"images": ids * 2 * per_camera, "ids": ids, "cameras": 2},
             "query": {"images": ids * 2, "ids": ids, "cameras": 2},
             "gallery": {"images": ids * 2 * (per_camera - 1), "ids": ids, "cameras": 2}}
    (root / "SYNTHETIC.json").write_text(json.dumps({"generator": "tests/tiny_datasets.py", "sizes": sizes}))
    return root


def write_tiny_vehicleid(root, ids: int = 6, per_id: int = 8, test_ids: int = 4, test_per_id: int = 3) -> Path:
    """VehicleID layout (``image/``, ``train_test_split/``, no cameras): vehicle i is a colour pair."""
    root = Path(root)
    rng = np.random.default_rng(0)
    (root / "image").mkdir(parents=True, exist_ok=True)
    lists = {"train_list.txt": [], "test_list_800.txt": []}
    n = 0
    for list_name, first, count, per in (("train_list.txt", 1, ids, per_id), ("test_list_800.txt", 101, test_ids, test_per_id)):
        for pid in range(first, first + count):
            top, bottom = COLOURS[pid % len(COLOURS)], COLOURS[(pid * 2 + 1) % len(COLOURS)]
            for _ in range(per):
                n += 1
                _image(rng, top, bottom).save(root / "image" / f"{n:07d}.jpg")
                lists[list_name].append(f"{n:07d} {pid}")
    (root / "train_test_split").mkdir(exist_ok=True)
    for list_name, lines in lists.items():
        (root / "train_test_split" / list_name).write_text("".join(f"{line}\n" for line in lines))
    return root


def touch(path, size=(8, 8)):
    """A real tiny image at ``path`` (parents created; the format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return path


def write(path, lines):
    """A text file of ``lines`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


class TensorItems(torch.utils.data.Dataset):
    """Ready image tensors with FGVC labels, served as an ImageDataset serves them (records without
    boxes, so no pointing game is played)."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.records = [FGVCRecord(path=f"{i}.jpg", label=int(label)) for i, label in enumerate(y)]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "target": int(self.y[i]), "index": i}
