"""The synthetic datasets: read by the normal parsers, deterministic, fine-grained by construction
(global statistics do not reveal the class; the part does), Market-1501's query/gallery rules."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from dcal.cli import main
from dcal.data import synthetic_fgvc
from dcal.data.catalog import load_dataset
from dcal.data.synthetic_fgvc import write_fgvc_demo
from dcal.data.synthetic_reid import write_reid_demo


@pytest.fixture(scope="module")
def fgvc(tmp_path_factory):
    return load_dataset("cub200", write_fgvc_demo(tmp_path_factory.mktemp("demo"), seed=0))


@pytest.fixture(scope="module")
def reid(tmp_path_factory):
    return load_dataset("market1501", write_reid_demo(tmp_path_factory.mktemp("demo"), seed=0))


def pixels(record) -> np.ndarray:
    return np.asarray(Image.open(record.path).convert("RGB"), dtype=np.float64)


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """Joint RGB histogram, 4 bins per channel, normalised."""
    bins = (image // 64).astype(int)
    codes = bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]
    return np.bincount(codes.reshape(-1), minlength=64) / codes.size


def shrunk(image: np.ndarray) -> np.ndarray:
    """The image averaged down to 4×4 (box filter), flattened."""
    h, w, _ = image.shape
    return image.reshape(4, h // 4, 4, w // 4, 3).mean(axis=(1, 3)).reshape(-1) / 255


def part_cells(record, image) -> np.ndarray:
    """The labelled part box averaged to its grid cells, as luminance (uses the annotation, not global statistics)."""
    x, y, w, h = (int(v) for v in record.bbox)
    crop = image[y:y + h, x:x + w].mean(axis=2)
    g = synthetic_fgvc.GRID
    return crop.reshape(g, h // g, g, w // g).mean(axis=(1, 3)).reshape(-1) / 255


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    centroids = np.stack([train_x[train_y == c].mean(0) for c in np.unique(train_y)])
    predicted = ((test_x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((predicted == test_y).mean())


def logistic_regression_accuracy(train_x, train_y, test_x, test_y, steps=300, lr=0.5, l2=1e-3) -> float:
    """Multinomial logistic regression by full-batch gradient descent on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    classes = int(train_y.max()) + 1
    onehot = np.eye(classes)[train_y]
    weight, bias = np.zeros((xs.shape[1], classes)), np.zeros(classes)
    for _ in range(steps):
        logits = xs @ weight + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(xs)
        weight -= lr * (xs.T @ grad + l2 * weight)
        bias -= lr * grad.sum(0)
    return float(((xt @ weight + bias).argmax(1) == test_y).mean())


@pytest.fixture(scope="module")
def fgvc_pixels(fgvc):
    """Every image of the FGVC demo, decoded once: {split: [(record, HxWx3 float array)]}."""
    return {split: [(r, pixels(r)) for r in records] for split, records in fgvc.splits.items()}


def features(items, extract):
    return np.stack([extract(r, image) for r, image in items]), np.array([r.label for r, _ in items])


def test_fgvc_demo_is_read_by_the_cub_parser_without_mismatches(fgvc):
    assert fgvc.mismatches == [] and fgvc.num_classes == synthetic_fgvc.NUM_CLASSES
    assert len(fgvc.splits["train"]) == synthetic_fgvc.NUM_CLASSES * synthetic_fgvc.TRAIN_PER_CLASS
    assert len(fgvc.splits["test"]) == synthetic_fgvc.NUM_CLASSES * synthetic_fgvc.TEST_PER_CLASS
    record = fgvc.splits["train"][0]
    height, width, _ = pixels(record).shape
    x, y, w, h = record.bbox
    assert w * h <= 0.04 * height * width  # the discriminative part is at most 4 % of the image
    positions = {r.bbox[:2] for r in fgvc.splits["train"]}
    assert len(positions) > 20  # and its position varies


def test_global_statistics_do_not_reveal_the_class_but_the_part_does(fgvc, fgvc_pixels):
    train, test = fgvc_pixels["train"], fgvc_pixels["test"]
    chance = 1 / fgvc.num_classes
    for extract in (colour_histogram, shrunk):
        train_x, train_y = features(train, lambda r, image: extract(image))
        test_x, test_y = features(test, lambda r, image: extract(image))
        assert nearest_centroid_accuracy(train_x, train_y, test_x, test_y) <= 2 * chance, extract.__name__
        assert logistic_regression_accuracy(train_x, train_y, test_x, test_y) <= 2 * chance, extract.__name__
    # the same classifier given the labelled part's cells is nearly perfect: the information is there
    train_x, train_y = features(train, part_cells)
    test_x, test_y = features(test, part_cells)
    assert logistic_regression_accuracy(train_x, train_y, test_x, test_y) >= 0.9


def test_fgvc_class_part_shows_the_class_pattern(fgvc, fgvc_pixels):
    """Dark cells of the labelled part = the class pattern (or its mirror image) named in classes.txt."""
    g = synthetic_fgvc.GRID
    for record, image in fgvc_pixels["test"][::37]:
        pattern = fgvc.class_names[record.label].split()[-1]
        grid = np.array([int(c) for c in pattern]).reshape(g, g)
        dark = (part_cells(record, image) < 0.5).astype(int).reshape(g, g)
        assert (dark == grid).all() or (dark == grid[:, ::-1]).all()


def test_fgvc_demo_deterministic_and_rewrite_is_a_no_op(fgvc, tmp_path):
    patterns, distractors = synthetic_fgvc.choose_patterns(np.random.default_rng(1))
    first = synthetic_fgvc.render_image(patterns[0], distractors, np.random.default_rng(4))
    second = synthetic_fgvc.render_image(patterns[0], distractors, np.random.default_rng(4))
    assert (first[0] == second[0]).all() and first[1] == second[1]
    marker = fgvc.root / "SYNTHETIC.json"
    stamp = os.stat(marker).st_mtime_ns
    assert write_fgvc_demo(fgvc.root.parent, seed=0) == fgvc.root and os.stat(marker).st_mtime_ns == stamp


def test_reid_demo_market_rules(reid):
    assert reid.mismatches == [] and reid.num_classes >= 100
    cameras = {r.camid for split in reid.splits.values() for r in split}
    assert len(cameras) >= 4
    gallery_by_pid = defaultdict(set)
    for r in reid.splits["gallery"]:
        gallery_by_pid[r.pid].add(r.camid)
    for q in reid.splits["query"]:
        assert gallery_by_pid[q.pid] - {q.camid}, "every query has a gallery match from another camera"
    assert 0 in gallery_by_pid  # distractors are kept
    files = os.listdir(reid.root / "bounding_box_test")
    junk = [f for f in files if f.startswith("-1_")]
    assert junk and len(reid.splits["gallery"]) == len(files) - len(junk)  # junk is dropped by the parser
    assert not {r.pid for r in reid.splits["query"]} & {r.original_pid for r in reid.splits["train"]}


def test_reid_demo_cameras_shift_appearance(reid):
    """The same identities look different per camera: mean colour per camera differs beyond noise."""
    by_camera = defaultdict(list)
    for r in reid.splits["train"]:
        by_camera[r.camid].append(pixels(r).mean(axis=(0, 1)))
    means = np.stack([np.mean(v, axis=0) for v in by_camera.values()])
    spread = np.stack([np.std(v, axis=0) for v in by_camera.values()]).mean(0) / np.sqrt(min(map(len, by_camera.values())))
    assert (np.ptp(means, axis=0) > 10 * spread).all()


def test_reid_demo_deterministic(tmp_path, reid):
    other = write_reid_demo(tmp_path, seed=0)
    names = sorted(os.listdir(other / "query"))
    assert names == sorted(os.listdir(reid.root / "query"))
    assert (other / "query" / names[0]).read_bytes() == (reid.root / "query" / names[0]).read_bytes()


def test_commands_write_and_check_the_demo(tmp_path, capsys):
    assert main(["demo-data", "--task", "reid", "--out", str(tmp_path), "--seed", "1"]) == 0
    root = capsys.readouterr().out.splitlines()[0]
    assert main(["data", "--dataset", "market1501", "--root", root, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"train", "query", "gallery"}
    assert set(summary["train"]) == {"images", "ids", "cameras"} and summary["train"]["ids"] >= 100
    assert main(["data", "--dataset", "market1501", "--root", root]) == 0
    assert "all counts match" in capsys.readouterr().out
    assert main(["data", "--dataset", "cub200", "--root", str(tmp_path)]) == 2
    assert "images.txt not found" in capsys.readouterr().err
