"""A synthetic person re-identification dataset in Market-1501's layout: ``dcal demo-data --task reid``.

Each identity is a figure (head, torso, legs) with coarse attributes drawn from small palettes
(shirt, trousers and hair colour, build), so many identities share their coarse appearance, plus
small details that tell those apart: a 3×3 emblem on the torso (3-pixel cells; a pattern of its
own per identity) and a bag on the left or right or none, in its own colour.  Each of the cameras
shifts appearance its own way: a colour cast (per-channel gains), brightness, a background of its
own, and a vertical offset of the figure.  Every image also jitters position, size and noise.

Splits follow Market-1501: ``bounding_box_train/`` holds the training identities; the test
identities are each seen by several cameras, one image per camera goes to ``query/`` for some of
them and the rest to ``bounding_box_test/``, so every query has a gallery match from another
camera.  The gallery also holds distractors (``0000_...``, pid 0) and junk (``-1_...``, dropped by
the parser).  File names are ``<pid>_c<camera>s1_<frame>_<box>.jpg``.

Recommended demo settings (measured on a shared 2-core CPU):

- images 64×32 (height × width), 100 training identities × 12 images (3 in each of 4 cameras),
  50 test identities (80 queries, 410 gallery images with 40 distractors), 5 cameras;
- transforms: ``build_transforms("reid", train, (64, 32), padding=4, erasing_prob=0.0)`` (pad 10
  and random erasing are heavy at this size);
- model: timm ``VisionTransformer(img_size=(64, 32), patch_size=8, embed_dim=128, depth=4,
  num_heads=4)`` from scratch, P×K = 8 identities × 4 images, AdamW lr 1e-3, cosine decay.
  A plain ViT with cross-entropy only reaches mAP 0.38 / rank-1 0.28 after 15 epochs and
  mAP 0.50 / rank-1 0.41 after 30 epochs (1,107 steps, ~10 min on the loaded machine, one
  thread); with ``erasing_prob=0.5`` it is slower (mAP 0.35 after 15 epochs).  DCAL's triplet
  loss and GLCA should do better; expect tens of percent, not a solved task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dcal.data.layout import synthetic_set_written, write_synthetic_marker

HEIGHT, WIDTH = 64, 32
NUM_TRAIN_IDS = 100
NUM_TEST_IDS = 50
NUM_CAMERAS = 5
TRAIN_CAMERAS_PER_ID = 4
TRAIN_IMAGES_PER_CAMERA = 3
TEST_CAMERAS_PER_ID = 3
TEST_IMAGES_PER_CAMERA = 3
NUM_DISTRACTORS = 40
NUM_JUNK = 20
FORMAT_VERSION = 1

SHIRTS = np.array([[200, 40, 40], [40, 90, 200], [235, 235, 235], [30, 30, 30], [60, 160, 70], [230, 200, 60]], float)
TROUSERS = np.array([[40, 40, 60], [120, 110, 90], [20, 20, 20], [70, 90, 150]], float)
HAIR = np.array([[20, 15, 10], [120, 80, 40], [200, 180, 120]], float)
SKIN = np.array([224, 180, 150], float)


def make_identity(rng) -> dict:
    """Coarse attributes from small palettes and small details of one identity."""
    return {
        "shirt": SHIRTS[rng.integers(len(SHIRTS))], "trousers": TROUSERS[rng.integers(len(TROUSERS))],
        "hair": HAIR[rng.integers(len(HAIR))], "broad": bool(rng.integers(2)),
        "emblem": rng.integers(0, 2, size=(3, 3)), "emblem_colour": rng.uniform(0, 255, size=3),
        "bag": int(rng.integers(3)), "bag_colour": rng.uniform(0, 255, size=3),
    }


def make_camera(rng) -> dict:
    """How one camera shifts appearance: colour gains, brightness, background, figure offset."""
    return {"gains": rng.uniform(0.8, 1.2, size=3), "brightness": rng.uniform(-20, 20),
            "background": rng.uniform(40, 220, size=3), "texture": rng.uniform(0, 30), "offset": int(rng.integers(-3, 4))}


def render_person(identity: dict, camera: dict, rng) -> np.ndarray:
    """One HxWx3 uint8 image of ``identity`` seen by ``camera``."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    image = camera["background"] + camera["texture"] * np.sin(xx[..., None] * 0.7 + yy[..., None] * 0.3)
    cx = WIDTH / 2 + rng.uniform(-2, 2)
    top = 4 + camera["offset"] + rng.uniform(-1, 1)
    half = (9 if identity["broad"] else 7) * rng.uniform(0.95, 1.05)

    def fill(x0, y0, x1, y1, colour):
        image[int(max(y0, 0)):int(min(y1, HEIGHT)), int(max(x0, 0)):int(min(x1, WIDTH))] = colour

    fill(cx - 4, top, cx + 4, top + 3, identity["hair"])
    fill(cx - 4, top + 3, cx + 4, top + 10, SKIN)
    fill(cx - half, top + 10, cx + half, top + 32, identity["shirt"])
    fill(cx - half + 1, top + 32, cx - 1, top + 56, identity["trousers"])
    fill(cx + 1, top + 32, cx + half - 1, top + 56, identity["trousers"])
    ex, ey = int(cx - 4), int(top + 14)
    for (row, col), on in np.ndenumerate(identity["emblem"]):
        if on:
            fill(ex + 3 * col, ey + 3 * row, ex + 3 * col + 3, ey + 3 * row + 3, identity["emblem_colour"])
    if identity["bag"]:
        side = -1 if identity["bag"] == 1 else 1
        bx = cx + side * (half + 2)
        fill(bx - 2, top + 22, bx + 2, top + 32, identity["bag_colour"])
    image = image * camera["gains"] + camera["brightness"] + rng.normal(0, 5, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _name(pid: int, camera: int, frame: int) -> str:
    return f"{pid:04d}_c{camera + 1}s1_{frame:06d}_00.jpg" if pid >= 0 else f"-1_c{camera + 1}s1_{frame:06d}_00.jpg"


def write_reid_demo(out_dir, seed: int = 0) -> Path:
    """Write the dataset to ``out_dir/synthetic_reid`` and return that folder (the ``market1501`` root).

    Deterministic in ``seed``.  A folder already holding a complete set of the same seed and format
    (its ``SYNTHETIC.json`` marker is written last) is left as it is.
    """
    root = Path(out_dir).expanduser() / "synthetic_reid"
    identity_key = {"generator": "dcal.data.synthetic_reid", "version": FORMAT_VERSION, "seed": seed}
    if synthetic_set_written(root, identity_key):
        return root
    rng = np.random.default_rng([seed, 1501])
    cameras = [make_camera(rng) for _ in range(NUM_CAMERAS)]
    people = {pid: make_identity(rng) for pid in range(1, NUM_TRAIN_IDS + NUM_TEST_IDS + 1)}
    folders = {split: root / name for split, name in
               (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test"))}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    counts = {split: [0, set(), set()] for split in folders}  # images, ids, cameras (as the parser counts)
    frame = 0

    def save(split: str, pid: int, camera: int, pixels: np.ndarray) -> None:
        nonlocal frame
        frame += 1
        Image.fromarray(pixels).save(folders[split] / _name(pid, camera, frame), quality=95)
        if pid != -1:
            counts[split][0] += 1
            counts[split][1].add(pid)
            counts[split][2].add(camera)

    for pid in range(1, NUM_TRAIN_IDS + 1):
        for camera in rng.choice(NUM_CAMERAS, size=TRAIN_CAMERAS_PER_ID, replace=False):
            for _ in range(TRAIN_IMAGES_PER_CAMERA):
                save("train", pid, int(camera), render_person(people[pid], cameras[camera], rng))
    for pid in range(NUM_TRAIN_IDS + 1, NUM_TRAIN_IDS + NUM_TEST_IDS + 1):
        seen_by = rng.choice(NUM_CAMERAS, size=TEST_CAMERAS_PER_ID, replace=False)
        query_cameras = seen_by[:int(rng.integers(1, TEST_CAMERAS_PER_ID))]  # leaves ≥ 1 other camera
        for camera in seen_by:
            for shot in range(TEST_IMAGES_PER_CAMERA):
                split = "query" if camera in query_cameras and shot == 0 else "gallery"
                save(split, pid, int(camera), render_person(people[pid], cameras[camera], rng))
    for pid, number in ((0, NUM_DISTRACTORS), (-1, NUM_JUNK)):
        for _ in range(number):
            camera = int(rng.integers(NUM_CAMERAS))
            pixels = render_person(make_identity(rng), cameras[camera], rng)
            if pid == -1:  # junk: a badly cropped box
                pixels = np.ascontiguousarray(np.roll(pixels, HEIGHT // 2, axis=0))
            save("gallery", pid, camera, pixels)
    sizes = {split: {"images": n, "ids": len(ids), "cameras": len(cams)} for split, (n, ids, cams) in counts.items()}
    write_synthetic_marker(root, identity_key, sizes)
    return root
