"""`dcal visualize`, `predict`, `extract` and `export` on tiny checkpoints in a temporary folder.

The checkpoints are written as the engine writes them (``dcal.engine.checkpoint.save_checkpoint``
of ``model``, ``config``, ``task``, ``num_classes``, ``class_names``), for an FGVC model on a
four-class CUB-layout set and a Re-ID model on a Market-1501-layout set, both tiny.
"""

import json

import numpy as np
import pytest
from PIL import Image

from dcal.cli import main
from dcal.config import Config
from dcal.engine.checkpoint import save_checkpoint
from dcal.engine.model_setup import build_model

CLASS_NAMES = ["red square", "green square", "blue square", "grey square"]
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (128, 128, 128)]
TINY_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _declare_sizes(root, sizes):
    """The SYNTHETIC.json marker `dcal demo-data` writes: the parsers then check these sizes, not the official ones."""
    (root / "SYNTHETIC.json").write_text(json.dumps({"generator": "tests", "sizes": sizes}))


def _write_cub(root):
    """4 classes x (2 train + 2 test) images of 48x40 with a coloured square, its box in bounding_boxes.txt."""
    rng = np.random.default_rng(0)
    lines = {name: [] for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")}
    image_id = 0
    for label, colour in enumerate(COLOURS):
        folder = root / "images" / f"{label + 1:03d}.{CLASS_NAMES[label].replace(' ', '_')}"
        folder.mkdir(parents=True)
        for is_train in (1, 1, 0, 0):
            image_id += 1
            pixels = rng.integers(0, 60, size=(40, 48, 3), dtype=np.uint8)
            x, y = int(rng.integers(4, 30)), int(rng.integers(4, 22))
            pixels[y : y + 12, x : x + 12] = colour
            Image.fromarray(pixels).save(folder / f"img_{image_id}.png")
            lines["images.txt"].append(f"{image_id} {folder.name}/img_{image_id}.png")
            lines["image_class_labels.txt"].append(f"{image_id} {label + 1}")
            lines["train_test_split.txt"].append(f"{image_id} {is_train}")
            lines["bounding_boxes.txt"].append(f"{image_id} {x} {y} 12 12")
    for name, content in lines.items():
        (root / name).write_text("\n".join(content) + "\n")
    _declare_sizes(root, {"train": {"images": 8, "classes": 4}, "test": {"images": 8, "classes": 4}})
    (root / "classes.txt").write_text("".join(f"{i + 1} {i + 1:03d}.{n.replace(' ', '_')}\n" for i, n in enumerate(CLASS_NAMES)))


def _write_market(root):
    """3 identities over 2 cameras: train, query (one per identity) and gallery, 32x16 images."""
    rng = np.random.default_rng(1)
    for folder, entries in (
        ("bounding_box_train", [(pid, cam, k) for pid in (1, 2, 3) for cam in (1, 2) for k in range(2)]),
        ("query", [(pid, 1, 0) for pid in (1, 2, 3)]),
        ("bounding_box_test", [(pid, cam, k) for pid in (1, 2, 3) for cam in (1, 2) for k in range(2)]),
    ):
        (root / folder).mkdir(parents=True)
        for pid, cam, k in entries:
            pixels = np.clip(rng.normal(60 * pid, 20, size=(32, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{pid:04d}_c{cam}s1_{k:06d}_00.jpg")
    _declare_sizes(root, {"train": {"images": 12, "ids": 3, "cameras": 2}, "query": {"images": 3, "ids": 3, "cameras": 1},
                          "gallery": {"images": 12, "ids": 3, "cameras": 2}})


def _checkpoint(tmp, task, dataset, root, img_size, class_names, baseline=False):
    config = Config()
    config.task, config.name = task, f"tiny-{task}"
    config.model.timm_kwargs = dict(TINY_VIT)
    config.model.glca, config.model.pwca_blocks = (False, 0) if baseline else (True, 2)
    config.data.dataset, config.data.root, config.data.synthetic = dataset, str(root), False
    config.data.img_size, config.data.resize_size = list(img_size), None
    config.data.num_workers = 0
    config.eval.batch_size = 8
    num_classes = len(class_names) if class_names else 3
    model = build_model(config, num_classes, pretrained=False)
    path = tmp / f"{task}{'-baseline' if baseline else ''}.pt"
    save_checkpoint({"model": model.state_dict(), "config": config.to_dict(), "task": task,
                     "num_classes": num_classes, "class_names": class_names}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ship")
    (tmp / "cub").mkdir()
    _write_cub(tmp / "cub")
    _write_market(tmp / "market")
    fgvc = _checkpoint(tmp, "fgvc", "cub200", tmp / "cub", (32, 32), CLASS_NAMES)
    reid = _checkpoint(tmp, "reid", "market1501", tmp / "market", (32, 16), None)
    baseline = _checkpoint(tmp, "fgvc", "cub200", tmp / "cub", (32, 32), CLASS_NAMES, baseline=True)
    return {"tmp": tmp, "fgvc": fgvc, "reid": reid, "baseline": baseline, "images": sorted((tmp / "cub" / "images").rglob("*.png"))}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_visualize_writes_a_panel_per_image_and_a_grid(tiny, capsys):
    out = tiny["tmp"] / "vis"
    images = tiny["images"][:3]
    code, stdout, stderr = _run(capsys, "visualize", "--checkpoint", tiny["fgvc"], *images, "--out", out)
    assert code == 0, stderr
    # 32x32 input shown at 256x256 (factor 8): two tiles side by side plus an 18-pixel caption.
    for image in images:
        with Image.open(out / f"{image.stem}.png") as panel:
            assert panel.size == (512, 256 + 18)
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (2 * (512 + 6) + 6, 2 * (274 + 6) + 6)


def test_visualize_split_of_a_reid_checkpoint(tiny, capsys):
    out = tiny["tmp"] / "vis-reid"
    code, _, stderr = _run(capsys, "visualize", "--checkpoint", tiny["reid"], "--split", "query", "--num-images", "2",
                           "--out", out)
    assert code == 0, stderr
    with Image.open(next(out.glob("0001_*.png"))) as panel:
        assert panel.size == (2 * 128, 256 + 18)  # 32x16 input x 8


def test_rank_list_marks_matches(tiny, capsys):
    out = tiny["tmp"] / "ranks"
    code, _, stderr = _run(capsys, "visualize", "--checkpoint", tiny["reid"], "--rank-list", "--num-queries", "3",
                           "--topk", "4", "--out", out)
    assert code == 0, stderr
    with Image.open(out / "rank_list.png") as figure:
        pixels = np.asarray(figure.convert("RGB"))
    tile_w, tile_h = 80 + 8, 160 + 8 + 30
    assert pixels.shape == (3 * (tile_h + 6) + 6, 5 * tile_w + 6 * 6 + 12, 3)
    # The expected frames, ranked here: squared Euclidean distance of the extracted features, the
    # query's identity seen by its own camera left out, the 4 nearest; green = same identity.
    from dcal.engine.data_setup import build_eval_data
    from dcal.export.features import extract_features
    from dcal.engine.trained_model import load_trained
    from dcal.viz.rank_list import MATCH_COLOR, MISTAKE_COLOR, QUERY_COLOR

    trained = load_trained(tiny["reid"], device="cpu")
    query, gallery = (extract_features(trained.model, build_eval_data(trained.config, split), batch_size=8)
                      for split in ("query", "gallery"))
    expected = []
    for q in range(3):
        distance = ((gallery.features - query.features[q]) ** 2).sum(1)
        kept = [g for g in np.argsort(distance, kind="stable")
                if not (gallery.labels[g] == query.labels[q] and gallery.cameras[g] == query.cameras[q])]
        expected.append([gallery.labels[g] == query.labels[q] for g in kept[:4]])
    assert {True, False} <= {match for row in expected for match in row}  # both colours are checked
    for row, matches in enumerate(expected):
        top = 6 + row * (tile_h + 6)
        for tile, colour in enumerate([QUERY_COLOR] + [MATCH_COLOR if m else MISTAKE_COLOR for m in matches]):
            left = 6 + tile * (tile_w + 6) + (6 if tile else 0)
            for y, x in ((1, 1), (80, 1), (1, 40), (80, tile_w - 2)):  # corners and sides of the frame
                assert pixels[top + y, left + x].tolist() == list(colour), (row, tile, y, x)


def test_baseline_checkpoint_draws_rollout_without_glca_selection_and_plays_the_pointing_game(tiny, capsys):
    from dcal.engine.data_setup import build_eval_data
    from test_localization import pointing_game  # the plain reference
    from dcal.engine.trained_model import load_trained

    out = tiny["tmp"] / "vis-baseline"
    code, _, stderr = _run(capsys, "visualize", "--checkpoint", tiny["baseline"], "--split", "test", "--num-images", "1",
                           "--out", out)
    assert code == 0, stderr
    with Image.open(next(out.glob("*.png"))) as panel:
        assert not np.all(np.asarray(panel) == (0, 255, 255), axis=-1).any()  # nothing outlined: no GLCA
    trained = load_trained(tiny["baseline"], device="cpu")
    result = pointing_game(trained.model, build_eval_data(trained.config, "test"), batch_size=8)
    assert result.count == 8 and 0.0 <= result.score <= 1.0 and 0.0 < result.chance < 1.0


def test_predict_prints_topk_names_and_scores(tiny, capsys):
    code, stdout, stderr = _run(capsys, "predict", "--checkpoint", tiny["fgvc"], tiny["images"][0], tiny["images"][5],
                                "--topk", "3", "--json")
    assert code == 0, stderr
    results = json.loads(stdout)
    assert [r["image"] for r in results] == [str(tiny["images"][0]), str(tiny["images"][5])]
    # Independent computation: the model's own inference output is softmax(SA) + softmax(GLCA).
    from dcal.engine.trained_model import load_trained

    trained = load_trained(tiny["fgvc"], device="cpu")
    with Image.open(tiny["images"][5]) as image:
        expected = trained.model(trained.batch([image.convert("RGB")]))[0].detach()  # the sum, as eval and ONNX output it
    top = expected.topk(3)
    predictions = results[1]["predictions"]
    assert [p["index"] for p in predictions] == top.indices.tolist()
    assert [p["class"] for p in predictions] == [CLASS_NAMES[i] for i in top.indices.tolist()]
    np.testing.assert_allclose([p["score"] for p in predictions], top.values.numpy(), atol=1e-6)


def test_extract_writes_features_labels_cameras_paths(tiny, capsys):
    out = tiny["tmp"] / "gallery.npz"
    code, _, stderr = _run(capsys, "extract", "--checkpoint", tiny["reid"], "--split", "gallery", "--out", out)
    assert code == 0, stderr
    with np.load(out) as data:
        assert data["features"].shape == (12, 64)  # SA + GLCA, 32 each
        np.testing.assert_allclose(np.linalg.norm(data["features"], axis=1), 1.0, atol=1e-5)
        names = [p.rsplit("/", 1)[-1] for p in data["paths"]]
        assert data["labels"].tolist() == [int(n[:4]) for n in names]
        assert data["cameras"].tolist() == [int(n[6]) - 1 for n in names]
        assert json.loads(str(data["metadata"]))["split"] == "gallery"
        from dcal.export.features import Features

        loaded = Features.load(out)
        np.testing.assert_array_equal(loaded.features, data["features"])
        assert loaded.scores is None and loaded.metadata["task"] == "reid"


def test_export_onnx_agrees_with_pytorch(tiny, capsys):
    import onnxruntime

    out = tiny["tmp"] / "fgvc.onnx"
    code, stdout, stderr = _run(capsys, "export", "--checkpoint", tiny["fgvc"], "--format", "onnx", "--out", out)
    assert code == 0, stderr
    assert "largest absolute difference" in stdout
    # Independently of the command's own check: another batch size, real images.
    from dcal.data.image_files import load_images
    from dcal.engine.trained_model import load_trained

    trained = load_trained(tiny["fgvc"], device="cpu")
    batch = trained.batch(load_images(tiny["images"][:5]))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"images": batch.numpy()})
    np.testing.assert_allclose(scores, trained.model(batch).detach().numpy(), atol=1e-4, rtol=0)


def test_a_checkpoint_of_the_wrong_task_is_named(tiny, capsys):
    code, _, stderr = _run(capsys, "predict", "--checkpoint", tiny["reid"], tiny["images"][0])
    assert code == 2
    assert str(tiny["reid"]) in stderr and "reid checkpoint" in stderr and "fgvc" in stderr
    code, _, stderr = _run(capsys, "visualize", "--checkpoint", tiny["fgvc"], "--rank-list", "--out", tiny["tmp"] / "x")
    assert code == 2 and str(tiny["fgvc"]) in stderr and "fgvc checkpoint" in stderr and "--rank-list" in stderr


def test_unreadable_image_is_named(tiny, capsys):
    broken = tiny["tmp"] / "broken.jpg"
    broken.write_bytes(b"not an image")
    code, _, stderr = _run(capsys, "predict", "--checkpoint", tiny["fgvc"], broken)
    assert code == 2 and str(broken) in stderr


def test_eval_reports_the_pointing_game_when_the_dataset_has_boxes(tiny, capsys):
    """`dcal eval` scores the pointing game from its own forward pass; it equals the stand-alone function."""
    from dcal.engine.data_setup import build_eval_data
    from test_localization import pointing_game  # the plain reference
    from dcal.engine.trained_model import load_trained

    code, stdout, stderr = _run(capsys, "eval", "--checkpoint", tiny["fgvc"], "--json")
    assert code == 0, stderr
    printed = json.loads(stdout.strip().splitlines()[-1])
    trained = load_trained(tiny["fgvc"], device="cpu")
    expected = pointing_game(trained.model, build_eval_data(trained.config, "test"), batch_size=8).as_dict()
    assert printed["pointing_game_images"] == expected["pointing_game_images"] == 8
    assert printed["pointing_game"] == pytest.approx(expected["pointing_game"])
    assert printed["pointing_game_chance"] == pytest.approx(expected["pointing_game_chance"])
