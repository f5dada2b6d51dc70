"""Images per second through dcal's training input pipeline: JPEG decoding + the paper's training
transforms (paper §4) + batching, with 2 DataLoader workers.

Writes real JPEG files to a temporary folder (500×375 like a CUB photo for FGVC at 448×448;
128×64 like a Market-1501 box for Re-ID at 256×128), reads them through ImageDataset, and prints
JSON.  ``decode_only`` rows time the same files decoded without transforms, so the transforms'
share of the cost is a ratio measured side by side.

    python benchmarks/data_throughput.py [--images 256] [--workers 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dcal.data.image_dataset import ImageDataset
from dcal.data.records import FGVCRecord, ReIDRecord
from dcal.data.transforms import build_transforms

SETTINGS = {
    "fgvc_448x448": ("fgvc", 448, (375, 500), lambda path, i: FGVCRecord(path, i % 10)),
    "reid_256x128": ("reid", (256, 128), (128, 64), lambda path, i: ReIDRecord(path, i % 10, i % 6, i % 10)),
}


def write_jpegs(folder: Path, count: int, height: int, width: int, rng) -> list[str]:
    paths = []
    for i in range(count):
        smooth = rng.uniform(0, 255, size=(height // 8 + 1, width // 8 + 1, 3))
        pixels = np.kron(smooth, np.ones((8, 8, 1)))[:height, :width] + rng.normal(0, 12, size=(height, width, 3))
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def images_per_second(dataset, workers: int, batch: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, drop_last=False,
                        persistent_workers=False, collate_fn=lambda items: torch.stack([it["image"] for it in items]))
    start = time.perf_counter()
    count = sum(len(images) for images in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results = {"workers": args.workers, "images": args.images, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (task, size, (height, width), make_record) in SETTINGS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            records = [make_record(path, i) for i, path in enumerate(write_jpegs(folder, args.images, height, width, rng))]
            to_tensor = build_transforms(task, False, (height, width), resize_size=(height, width)) if task == "fgvc" \
                else build_transforms(task, False, (height, width))
            decode = images_per_second(ImageDataset(records, to_tensor), args.workers, args.batch)
            train = images_per_second(ImageDataset(records, build_transforms(task, True, size)), args.workers, args.batch)
            results[name] = {"source_jpeg": f"{width}x{height}", "train_images_per_s": round(train, 1),
                             "decode_only_images_per_s": round(decode, 1),
                             "transform_cost_ratio": round(decode / train, 2)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
