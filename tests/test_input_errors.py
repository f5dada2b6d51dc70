"""Input that is wrong gets one line naming the key, file or value, and nothing is written: config
values that cannot work, unknown keys, empty or unreadable dataset splits, identifiers a dataset's
naming rules forbid, outputs over inputs; --json prints only JSON; skipped images are counted;
every Pillow mode reaches the transform as 8-bit RGB."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dcal.cli import main
from dcal.data.catalog import load_dataset
from dcal.data.image_dataset import load_image
from dcal.errors import DatasetError
from run_helpers import TINY_RUN
from test_data_parsers import touch, write, write_cub
from tiny_datasets import write_tiny_fgvc, write_tiny_reid

pytestmark = pytest.mark.filterwarnings("ignore::dcal.data.layout.SplitSizeWarning",
                                        "ignore::dcal.data.image_dataset.CorruptImageWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_fgvc(tmp_path_factory.mktemp("data") / "tiny", classes=4, train_per_class=8, test_per_class=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}"]) == 0
    return run / "checkpoints" / "last.pt"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=0", "config key 'data.batch_size' must be at least 1, got 0"),
    ("train.epochs=0", "config key 'train.epochs' must be at least 1, got 0"),
    ("optim.lr=-0.001", "config key 'optim.lr' must be a finite number, 0 or more, got -0.001"),
    ("optim.lr=.nan", "config key 'optim.lr' must be a finite number, 0 or more, got nan"),
    ("model.glca_ratio=1.5", "config key 'model.glca_ratio' must be a share of the patch tokens in (0, 1]"),
    ("data.erasing_prob=2", "config key 'data.erasing_prob' must be a probability in [0, 1], got 2.0"),
    ("train.accum_steps=0", "config key 'train.accum_steps' must be at least 1, got 0"),
    ("data.img_size=[20, 16]", "config key 'data.img_size' [20, 16]: the height 20 is not a multiple of the patch "
                               "size 8 (model.timm_kwargs.patch_size), so the last 4 pixels would be dropped; use 16 or 24"),
    ("data.img_size=[4, 4]", "config key 'data.img_size' [4, 4]: the height 4 is smaller than one 8-pixel patch"),
    ("data.resize_size=[8, 8]", "config key 'data.resize_size' [8, 8] is smaller than the crop data.img_size [16, 16]"),
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    ("optim.zzz=1", "unknown config key 'optim.zzz'; valid keys of section 'optim': name, lr,"),
    ("trian.epochs=3", "unknown config key 'trian.epochs'; did you mean 'train.epochs'?"),
    ("qqq.x=1", "unknown config key 'qqq.x'; 'qqq' is not a section; the sections are data, eval,"),
])
def test_values_that_cannot_work_are_rejected_when_read(override, message, data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}", override]) == 2
    assert message in one_line_error(capsys)
    assert not run.exists()


def test_data_reports_an_empty_query_split_as_an_error(tmp_path, capsys):
    root = write_tiny_reid(tmp_path / "market")
    for image in (root / "query").iterdir():
        image.unlink()
    assert main(["data", "--dataset", "market1501", "--root", str(root)]) == 2
    assert f"market1501 at {root.resolve()}: the query split is empty (0 images)" in one_line_error(capsys)


def test_data_verify_decodes_every_image_and_lists_the_unreadable(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    bad = [root / "train" / "class_0" / "003.png", root / "test" / "class_2" / "001.png"]
    bad[0].write_bytes(b"truncated")
    bad[1].write_bytes(bad[1].read_bytes()[:60])
    assert main(["data", "--dataset", "image_folder", "--root", str(root), "--verify"]) == 2
    captured = capsys.readouterr()
    assert "images that cannot be decoded (2):" in captured.out
    assert all(f"cannot read image {path}" in captured.out for path in bad)
    assert captured.err.strip() == (f"dcal data: error: image_folder at {root.resolve()}: 2 image(s) cannot be decoded "
                                    "(listed in the output; data.skip_corrupt=true skips them in training)")

    assert main(["data", "--dataset", "image_folder", "--root", str(root), "--verify", "--json"]) == 2
    summary = json.loads(capsys.readouterr().out)  # the JSON document alone
    assert summary["train"]["unreadable"] == [str(bad[0])] and summary["test"]["unreadable"] == [str(bad[1])]
    assert summary["train"]["images"] == 32


def test_skipped_images_are_counted_per_epoch_and_per_evaluation(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    (root / "train" / "class_0" / "000.png").write_bytes(b"corrupt")
    (root / "test" / "class_1" / "000.png").write_bytes(b"corrupt")
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={root}", "data.skip_corrupt=true"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1  train loss" in out and "  1 unreadable images skipped" in out
    assert "  1 unreadable evaluation images skipped (test 1)" in out
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["skipped_images"] == 1 and record["num_images"] == 7


def test_skipped_query_and_gallery_images_are_counted_per_evaluation(tmp_path, capsys):
    root = write_tiny_reid(tmp_path / "market")
    query, gallery = sorted((root / "query").iterdir()), sorted((root / "bounding_box_test").iterdir())
    query[0].write_bytes(b"corrupt")
    gallery[0].write_bytes(b"corrupt")
    run = tmp_path / "run"
    args = [a for a in TINY_RUN if not a.startswith(("data.img_size", "data.resize_size", "data.dataset"))]
    capsys.readouterr()
    assert main(["train", "--out", str(run), *args, "task=reid", "data.dataset=market1501", f"data.root={root}",
                 "data.img_size=[16, 16]", "data.num_instances=4", "data.padding=2", "data.skip_corrupt=true"]) == 0
    assert "  2 unreadable evaluation images skipped (query 1, gallery 1)" in capsys.readouterr().out
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["skipped_images"] == 2 and record["num_images"] == len(query) + len(gallery) - 2


def test_every_pillow_mode_becomes_8_bit_rgb(tmp_path):
    ramp16 = (np.arange(64).reshape(8, 8) * 1040).astype(np.uint16)  # 0 .. 65520
    expected16 = np.rint(ramp16.astype(np.float64) * 255 / 65535)
    cases = {
        "grey.png": (Image.fromarray(ramp16.astype(np.uint8)), None),
        "bits16.png": (Image.fromarray(ramp16), expected16),
        "int32.tif": (Image.fromarray(ramp16.astype(np.int32), "I"), expected16),
        "float.tif": (Image.fromarray((ramp16 / 65535).astype(np.float32), "F"), expected16),
        "one_bit.png": (Image.new("1", (8, 8), 1), np.full((8, 8), 255)),
        "alpha.png": (Image.new("RGBA", (8, 8), (10, 20, 30, 0)), None),
        "grey_alpha.png": (Image.new("LA", (8, 8), (77, 0)), np.full((8, 8), 77)),
        "cmyk.jpg": (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), None),
        "ycbcr.jpg": (Image.new("YCbCr", (8, 8), (128, 128, 128)), None),
    }
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.info["transparency"] = 0
    cases["palette.png"] = (palette, None)
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        loaded = load_image(str(tmp_path / name))
        pixels = np.asarray(loaded)
        assert loaded.mode == "RGB" and pixels.dtype == np.uint8 and pixels.shape == (8, 8, 3), name
        if expected is not None:
            assert np.array_equal(pixels[..., 0], expected.astype(np.uint8)), name
    assert tuple(np.asarray(load_image(str(tmp_path / "palette.png")))[0, 0]) == (200, 100, 50)


@pytest.mark.parametrize("dataset, folder, name, message", [
    ("market1501", "query", "0007_c0s1_000151_01.jpg", "camera 0 is not allowed by the dataset's naming rules (1..6)"),
    ("market1501", "bounding_box_test", "0007_c7s1_000151_01.jpg", "camera 7 is not allowed"),
    ("market1501", "bounding_box_train", "-5_c1s1_000151_01.jpg", "identity -5 is not allowed by the dataset's naming "
                                                                  "rules (0..1501 (or -1: junk))"),
    ("dukemtmc", "query", "0005_c9_f0046182.jpg", "camera 9 is not allowed by the dataset's naming rules (1..8)"),
])
def test_reid_parsers_reject_identifiers_the_naming_rules_forbid(dataset, folder, name, message, tmp_path):
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        touch(tmp_path / sub / "0001_c1s1_000001_00.jpg")
    touch(tmp_path / folder / name)
    with pytest.raises(DatasetError, match="naming rules") as error:
        load_dataset(dataset, tmp_path)
    assert message in str(error.value) and name in str(error.value)


def test_cub_rejects_unknown_classes_and_split_flags(tmp_path):
    write_cub(tmp_path)
    labels = (tmp_path / "image_class_labels.txt").read_text()
    write(tmp_path / "image_class_labels.txt", labels.replace("3 2", "3 7").splitlines())
    with pytest.raises(DatasetError, match="image id 3 has class '7' in image_class_labels.txt, not one of the 2 class ids"):
        load_dataset("cub200", tmp_path)
    write(tmp_path / "image_class_labels.txt", labels.splitlines())
    write(tmp_path / "train_test_split.txt", ["1 1", "2 0", "3 2"])
    with pytest.raises(DatasetError, match=r"image id 3 has '2' in train_test_split.txt; expected 1 \(train\) or 0"):
        load_dataset("cub200", tmp_path)


def test_no_command_writes_over_its_input(checkpoint, data_root, tmp_path, capsys):
    before = checkpoint.read_bytes()
    assert main(["extract", "--checkpoint", str(checkpoint), "--split", "test", "--out", str(checkpoint)]) == 2
    assert f"--out {checkpoint} is the checkpoint this command reads" in one_line_error(capsys)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(checkpoint)]) == 2
    assert f"--out {checkpoint} is the checkpoint this command reads" in one_line_error(capsys)
    assert main(["extract", "--checkpoint", str(checkpoint), "--split", "test", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in one_line_error(capsys)
    assert checkpoint.read_bytes() == before

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        shutil.copy(data_root / "test" / "class_0" / f"{i:03d}.png", images / f"{i:03d}.png")
    originals = {p.name: p.read_bytes() for p in images.iterdir()}
    assert main(["visualize", "--checkpoint", str(checkpoint), str(images), "--out", str(images)]) == 2
    assert "would overwrite the input image" in one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in images.iterdir()} == originals


def test_json_output_is_the_only_thing_on_stdout(checkpoint, capsys):
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(checkpoint), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["num_images"] == 8  # parses as a whole: nothing else was printed


def test_divergence_names_a_checkpoint_that_exists(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY_RUN, f"data.root={data_root}", "optim.name=sgd", "optim.lr=1e30",
                 "train.epochs=3"]) == 2
    err = one_line_error(capsys)
    assert "the loss became" in err
    last = run / "checkpoints" / "last.pt"
    if "No checkpoint was written yet" in err:
        assert not last.exists()
    else:
        step = torch.load(last, weights_only=True)["global_step"]
        assert f"The last checkpoint, from before it, is {last} (optimiser step {step})" in err
