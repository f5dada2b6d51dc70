"""Mistakes a user makes with files and devices get one line naming the file or device and what is
wrong: a device the machine lacks, config files that are not UTF-8, not YAML, empty or a folder,
checkpoints that are empty, not torch files, code-running pickles or a folder."""

import os

import pytest
import torch

from dcal.cli import main
from run_helpers import TINY_RUN
from tiny_datasets import write_tiny_fgvc


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    root = write_tiny_fgvc(tmp / "data", classes=2, train_per_class=4, test_per_class=1)
    assert main(["train", "--out", str(tmp / "run"), *TINY_RUN, f"data.root={root}", "data.batch_size=4"]) == 0
    return {"checkpoint": tmp / "run" / "checkpoints" / "last.pt", "image": next(root.rglob("*.png"))}


@pytest.mark.parametrize("argv", [
    ["train", "train.device=cuda", "train.epochs=1"],
    ["eval", "--checkpoint", "CKPT", "train.device=cuda"],
    ["extract", "--checkpoint", "CKPT", "--split", "test", "--out", "OUT/f.npz", "--device", "cuda"],
    ["predict", "--checkpoint", "CKPT", "--device", "cuda:1", "IMAGE"],
    ["search", "--checkpoint", "CKPT", "--query", "IMAGE", "--gallery", "OUT", "--device", "gpu"],
    ["visualize", "--checkpoint", "CKPT", "--out", "OUT/v", "--device", "cuda", "IMAGE"],
])
def test_a_device_the_machine_lacks_is_one_line_naming_those_it_has(argv, trained, no_cuda, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("CKPT", str(trained["checkpoint"])).replace("OUT", str(tmp_path))
            .replace("IMAGE", str(trained["image"])) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert "is not available on this machine; available: cpu" in err or "is not a device name" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_config_files_that_are_not_yaml_text_are_one_line(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  epochs: 3\n    lr: [1, 2\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    for path, expected in [(latin, f"config file {latin} is not UTF-8 text (byte 9 is 0xe9)"),
                           (broken, f"config file {broken} is not valid YAML at line 3, column"),
                           (empty, f"config file {empty} is empty (no settings)"),
                           (tmp_path, f"config file {tmp_path} is a folder")]:
        assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
        assert expected in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this ran",))


def test_unusable_checkpoints_say_what_is_wrong_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    evil = tmp_path / "evil.pt"
    torch.save({"model": RunsCode()}, evil)
    weights = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, weights)
    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "config": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    for path, expected in [
        (empty, f"checkpoint {empty} is empty (0 bytes)"),
        (text, f"checkpoint {text} is not a file written by torch.save"),
        (evil, f"checkpoint {evil} holds Python objects beyond tensors and plain values (posix.system); it is refused "
               "because loading it could run code"),
        (weights, "found ['state_dict']); checkpoints are written by `dcal train` to <run>/checkpoints/{last,best}.pt"),
        (truncated, f"checkpoint {truncated} is not a file written by torch.save"),
        (tmp_path, f"checkpoint {tmp_path} is a folder; give the file"),
    ]:
        assert main(["eval", "--checkpoint", str(path)]) == 2
        err = one_line_error(capsys)
        assert expected in err, err
        assert not err.endswith(":")


def test_warnings_are_one_line_in_dcal_words_and_said_once(trained, tmp_path, capsys, monkeypatch):
    from PIL import Image

    large = tmp_path / "large.png"
    Image.new("RGB", (30, 20), "red").save(large)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 600 pixels: above the limit, below twice it
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(trained["checkpoint"]), str(large), str(large)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcal predict: warning: image {large} has 600 pixels (30x20), more than Pillow's "
                   "decompression-bomb limit of 500; it is read anyway"]


def test_a_skipped_image_is_one_warning_line_however_often_it_is_met(tmp_path, capsys):
    root = write_tiny_fgvc(tmp_path / "data", classes=2, train_per_class=4, test_per_class=1)
    broken = sorted((root / "train").rglob("*.png"))[0]
    broken.write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "run"), *TINY_RUN, f"data.root={root}", "data.batch_size=4",
                 "data.skip_corrupt=true", "train.epochs=2"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"dcal train: warning: skipping cannot read image {broken}: "
                      f"cannot identify image file '{broken}'"], warned
