"""ImageDataset items, corrupt-image handling, the aircraft banner crop, and the paper's transforms."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dcal.data.image_dataset import CorruptImageWarning, ImageDataset, collate_skipping_corrupt, load_image
from dcal.data.records import FGVCRecord, ReIDRecord
from dcal.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from dcal.errors import ConfigError, DatasetError


def image_file(path, colour=(10, 20, 30), size=(20, 30)):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_items_are_named_dicts(tmp_path):
    fgvc = ImageDataset([FGVCRecord(image_file(tmp_path / "a.jpg"), label=3)], transform=build_transforms("fgvc", False, 16))
    item = fgvc[0]
    assert set(item) == {"image", "target", "index"} and item["target"] == 3 and item["image"].shape == (3, 16, 16)
    reid = ImageDataset([ReIDRecord(image_file(tmp_path / "b.png"), pid=1, camid=4, original_pid=77)],
                        transform=build_transforms("reid", False, (32, 16)))
    item = reid[0]
    assert (item["target"], item["camid"], item["index"]) == (1, 4, 0) and item["image"].shape == (3, 32, 16)


def test_banner_crop_keeps_top_rows(tmp_path):
    image = Image.new("RGB", (10, 50), (0, 0, 0))
    image.paste((255, 255, 255), (0, 30, 10, 50))  # a white 20-row banner
    image.save(tmp_path / "plane.png")
    cropped = load_image(str(tmp_path / "plane.png"), crop_bottom=20)
    assert cropped.size == (10, 30) and max(cropped.getextrema()[0]) == 0


def test_corrupt_image_error_names_the_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dataset = ImageDataset([FGVCRecord(str(tmp_path / "broken.jpg"), 0)], transform=build_transforms("fgvc", False, 8))
    with pytest.raises(DatasetError, match="broken.jpg"):
        dataset[0]
    with pytest.raises(DatasetError, match="gone.jpg"):
        load_image(str(tmp_path / "gone.jpg"))


def test_skip_corrupt_warns_counts_and_collate_drops(tmp_path):
    good = image_file(tmp_path / "good.jpg")
    truncated = tmp_path / "truncated.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    records = [FGVCRecord(good, 0), FGVCRecord(str(truncated), 1), FGVCRecord(good, 2)]
    dataset = ImageDataset(records, transform=build_transforms("fgvc", False, 8), skip_corrupt=True)
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate_skipping_corrupt)
    with pytest.warns(CorruptImageWarning, match="truncated.jpg"):
        batch = next(iter(loader))
    assert dataset.skipped == 1 and batch["skipped"] == [str(truncated)]
    assert batch["target"].tolist() == [0, 2] and batch["index"].tolist() == [0, 2] and batch["image"].shape[0] == 2
    with pytest.warns(CorruptImageWarning), pytest.raises(DatasetError, match="every image of a batch was unreadable"):
        collate_skipping_corrupt([dataset[1]])


def test_decoding_on_many_threads_leaves_the_warning_machinery_as_it_found_it(tmp_path, monkeypatch):
    """dcal.data.verify decodes on a thread pool; warnings.catch_warnings is process-wide, so two
    threads inside it at once could leave Python's default printer (or a filter) installed, and a
    command's later warnings would no longer be its one-line messages."""
    import warnings

    from dcal.data.verify import undecodable

    def printer(*args, **kwargs):
        pass

    monkeypatch.setattr(warnings, "showwarning", printer)
    filters = list(warnings.filters)
    colours = [(i, 255 - i, (7 * i) % 256) for i in range(48)]
    records = [FGVCRecord(image_file(tmp_path / f"{i}.png", colour, size=(96, 96)), 0) for i, colour in enumerate(colours)]
    for _ in range(5):
        assert undecodable(records, threads=8) == {}
        assert warnings.showwarning is printer
        assert warnings.filters == filters


def test_fgvc_transforms_follow_the_paper(tmp_path):
    # a 2-pixel-wide red stripe at the far left: the 448 test crop of a 550 resize cuts it off
    image = Image.new("RGB", (100, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 2, 100))
    test = build_transforms("fgvc", False, 448)
    assert [type(t).__name__ for t in test.transforms] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert test.transforms[0].size == (550, 550)
    out = test(image)
    assert out.shape == (3, 448, 448)
    blue = (torch.tensor([0.0, 0.0, 1.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, :, 0], blue[:, None].expand(3, 448), atol=1e-2)
    train = build_transforms("fgvc", True, 448)
    assert [type(t).__name__ for t in train.transforms] == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert train(image).shape == (3, 448, 448)
    assert build_transforms("fgvc", True, 64, resize_size=72).transforms[0].size == (72, 72)


def test_reid_transforms_follow_the_paper():
    train = build_transforms("reid", True, (256, 128))
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "Pad", "RandomCrop", "ToTensor", "Normalize", "RandomErasing"]
    assert train.transforms[2].padding == 10 and train.transforms[0].size == (256, 128)
    assert train(Image.new("RGB", (64, 128))).shape == (3, 256, 128)
    assert build_transforms("reid", False, (256, 256))(Image.new("RGB", (300, 200))).shape == (3, 256, 256)


def test_reid_random_erasing_fills_with_normal_noise():
    """TransReID's timm RandomErasing(mode='pixel'): the erased box holds per-pixel N(0, 1) noise, not a constant."""
    erase = build_transforms("reid", True, (256, 128), erasing_prob=1.0).transforms[-1]
    torch.manual_seed(0)
    out = erase(torch.full((3, 256, 128), 7.0))
    box = out != 7.0
    assert 0.02 * 256 * 128 * 3 <= box.sum() <= 256 * 128 * 3 / 3 + 1
    noise = out[box]
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1.0) < 0.1


def test_transform_errors():
    with pytest.raises(ConfigError, match="task 'detection' is not one of fgvc, reid"):
        build_transforms("detection", True, 224)
    with pytest.raises(ConfigError, match="smaller than the crop size"):
        build_transforms("fgvc", True, 448, resize_size=400)
