"""A synthetic fine-grained dataset in CUB-200-2011's layout: ``dcal demo-data --task fgvc``.

Fine-grained by construction.  Every image shows one object (an ellipse) on a background, both
drawn from one distribution shared by all classes (background gradient and noise, object colour,
size, position).  Over it sit three small *parts*, each a 4×4 grid of 2-pixel cells, dark cells
(near-black) and light cells (near-white), the same for every class: 8×8 pixels = 1.6 % of the 64×64 image,
placed on the 8-pixel patch grid at a varying position (6×6 possible slots, at least 8 pixels from
the border).  The *class part* shows the class's dark/light pattern; the two *distractor parts*
show patterns that belong to no class.  Every pattern has 8 dark cells of 16 and all colours are
drawn independently of the class, so colour histograms and the image shrunk to 4×4 carry no class
information; only the arrangement of the class part's cells does.  No class pattern equals another
class's or a distractor's mirror image, so horizontal flipping keeps classes apart.  The class
part's box goes to ``bounding_boxes.txt``, so localisation (attention rollout, GLCA's selection)
can be scored.

Parts sit on the 8-pixel grid so that a ViT with 8-pixel patches sees each part as one token: the
demo is learnable on a CPU in minutes.  Keep that alignment: use transforms that neither rescale
nor crop (``img_size=64, resize_size=64``: train = flip only, which maps the grid onto itself).

Recommended demo settings (measured on a shared 2-core CPU):

- images 64×64, 10 classes, 100 train + 40 test images per class (written in ~2 s of CPU time);
- transforms: ``build_transforms("fgvc", train, 64, resize_size=64)`` (train: flip only);
- model: timm ``VisionTransformer(img_size=64, patch_size=8, embed_dim=128, depth=4,
  num_heads=4)`` from scratch, class-token pooling, AdamW lr 1e-3, weight decay 0.05, batch 32,
  1 warm-up epoch then cosine decay.  A plain ViT trained so (one thread, real JPEG pipeline) sits
  at chance for ~5 epochs, then reaches 82.8 % test top-1 after 9 epochs and 98.5 % after 12
  (372 steps) — 281 s wall including writing the data, on a machine loaded by other jobs (about
  12 s per epoch once the load eased).  ``configs/demo/fgvc.yaml`` gives DCAL 24 epochs (16
  reached only 70 % combined top-1).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from dcal.data.layout import synthetic_set_written, write_synthetic_marker
from dcal.errors import DatasetError

IMAGE_SIZE = 64
NUM_CLASSES = 10
TRAIN_PER_CLASS = 100
TEST_PER_CLASS = 40
PATCH = 8
CELL = 2
GRID = 4
PART = CELL * GRID
ON_CELLS = 8
NUM_DISTRACTORS = 2
MARGIN = 8
FORMAT_VERSION = 1


_GRID_Y, _GRID_X = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
_RAMP = (_GRID_Y / (IMAGE_SIZE - 1))[..., None]  # top-to-bottom blend of the background colours


def _flip(pattern: tuple) -> tuple:
    grid = np.array(pattern).reshape(GRID, GRID)[:, ::-1]
    return tuple(grid.reshape(-1).tolist())


def choose_patterns(rng, num_classes: int = NUM_CLASSES) -> tuple[list, list]:
    """Class patterns and distractor patterns (4×4 0/1 tuples with ``ON_CELLS`` ones).

    Mirror images are grouped into orbits; each class takes one orbit (so a flipped class part is
    still that class) and distractors come only from the remaining orbits.
    """
    patterns = [tuple(1 if i in on else 0 for i in range(GRID * GRID)) for on in combinations(range(GRID * GRID), ON_CELLS)]
    orbits, seen = [], set()
    for pattern in patterns:
        if pattern not in seen:
            orbit = sorted({pattern, _flip(pattern)})
            seen.update(orbit)
            orbits.append(orbit)
    order = rng.permutation(len(orbits))
    class_orbits = [orbits[i] for i in order[:num_classes]]
    distractors = [p for i in order[num_classes:] for p in orbits[i]]
    return [orbit[0] for orbit in class_orbits], distractors


def _random_colour(rng) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _draw_part(canvas: np.ndarray, pattern: tuple, x: int, y: int, rng) -> None:
    dark = rng.uniform(0, 40) + rng.uniform(0, 15, size=3)  # near-black, slightly tinted
    light = rng.uniform(200, 240) + rng.uniform(0, 15, size=3)  # near-white, slightly tinted
    cells = np.array(pattern).reshape(GRID, GRID)
    block = np.where(cells.repeat(CELL, 0).repeat(CELL, 1)[..., None] > 0, dark, light)
    canvas[y:y + PART, x:x + PART] = block


def _place_parts(rng, count: int, box: tuple) -> list[tuple[int, int]]:
    """Top-left corners, on the ``PATCH``-pixel grid, of ``count`` parts inside ``box`` (x0, y0, x1, y1),
    with at least one free grid cell between any two."""
    x0, y0, x1, y1 = box
    slots = [(x, y) for y in range(y0, y1 + 1, PATCH) for x in range(x0, x1 + 1, PATCH)]
    while True:
        corners = [slots[i] for i in rng.choice(len(slots), size=count, replace=False)]
        if all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 2 * PATCH for a, b in combinations(corners, 2)):
            return corners


def render_image(pattern: tuple, distractors: list, rng) -> tuple[np.ndarray, tuple]:
    """One image showing ``pattern`` as its class part; returns ``(uint8 HxWx3, (x, y, w, h) of the part)``."""
    size = IMAGE_SIZE
    yy, xx = _GRID_Y, _GRID_X
    top, bottom = _random_colour(rng), _random_colour(rng)
    canvas = (1 - _RAMP) * top + _RAMP * bottom
    cx, cy = rng.uniform(26, 38, size=2)
    ax, ay = rng.uniform(18, 26), rng.uniform(14, 22)
    inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
    canvas[inside] = _random_colour(rng)
    low, high = MARGIN, size - MARGIN - PART
    corners = _place_parts(rng, 1 + NUM_DISTRACTORS, (low, low, high, high))
    _draw_part(canvas, pattern, *corners[0], rng)
    for corner in corners[1:]:
        _draw_part(canvas, distractors[int(rng.integers(len(distractors)))], *corner, rng)
    canvas += rng.normal(0, 6, size=canvas.shape)
    x, y = corners[0]
    return np.clip(canvas, 0, 255).astype(np.uint8), (float(x), float(y), float(PART), float(PART))


def _sizes(train_per_class: int, test_per_class: int) -> dict:
    train, test = NUM_CLASSES * train_per_class, NUM_CLASSES * test_per_class
    return {"train": {"images": train, "classes": NUM_CLASSES}, "test": {"images": test, "classes": NUM_CLASSES}}


def write_fgvc_demo(out_dir, seed: int = 0, train_per_class: int = TRAIN_PER_CLASS,
                    test_per_class: int = TEST_PER_CLASS) -> Path:
    """Write the dataset to ``out_dir/synthetic_fgvc`` and return that folder (the ``cub200`` root).

    Deterministic in ``seed`` and the per-class counts.  Fewer training images per class make a
    harder set (``configs/demo/fgvc_few.yaml``), on which the branches' contributions show.  If the
    folder already holds a complete set written with the same seed, counts and format (its
    ``SYNTHETIC.json`` marker is written last), nothing is rewritten.
    """
    if train_per_class < 1 or test_per_class < 1:
        raise DatasetError(f"synthetic FGVC set: train_per_class and test_per_class must be at least 1; "
                           f"got {train_per_class} and {test_per_class}")
    root = Path(out_dir).expanduser() / "synthetic_fgvc"
    identity = {"generator": "dcal.data.synthetic_fgvc", "version": FORMAT_VERSION, "seed": seed}
    if (train_per_class, test_per_class) != (TRAIN_PER_CLASS, TEST_PER_CLASS):
        identity.update(train_per_class=train_per_class, test_per_class=test_per_class)
    if synthetic_set_written(root, identity):
        return root
    rng = np.random.default_rng([seed, 2022])
    class_patterns, distractors = choose_patterns(rng)
    class_folders = [f"{c + 1:03d}.pattern_{''.join(map(str, p))}" for c, p in enumerate(class_patterns)]
    for folder in class_folders:
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
    images, labels, splits, boxes = [], [], [], []
    image_id = 0
    for split, per_class in (("1", train_per_class), ("0", test_per_class)):
        for label, pattern in enumerate(class_patterns):
            for _ in range(per_class):
                image_id += 1
                pixels, box = render_image(pattern, distractors, rng)
                relative = f"{class_folders[label]}/synthetic_{image_id:05d}.jpg"
                Image.fromarray(pixels).save(root / "images" / relative, quality=95, subsampling=0)
                images.append(f"{image_id} {relative}")
                labels.append(f"{image_id} {label + 1}")
                splits.append(f"{image_id} {split}")
                boxes.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels), ("train_test_split.txt", splits),
                        ("bounding_boxes.txt", boxes),
                        ("classes.txt", [f"{c + 1} {folder}" for c, folder in enumerate(class_folders)])):
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_synthetic_marker(root, identity, _sizes(train_per_class, test_per_class))
    return root
