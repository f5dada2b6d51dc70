"""The pointing game: mapping model-input pixels back through the test transform, and scoring."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from dcal.data.image_dataset import ImageDataset
from dcal.data.records import FGVCRecord
from dcal.data.transform_geometry import input_view, patch_centres, transform_sizes
from dcal.errors import LocalizationError
from dcal.evaluation.pointing_game import PointingGameResult, pointing_hits, record_pointing


def _coordinate_image(width, height):
    """A float image whose two channels hold each pixel centre's own x and y (continuous coordinates)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([xs, ys]).float()


@pytest.mark.parametrize(
    "image_size, transform",
    [
        ((200, 150), T.Compose([T.Resize((64, 80), antialias=False), T.CenterCrop(56)])),
        ((150, 233), T.Compose([T.Resize((64, 70), antialias=False), T.CenterCrop((48, 40))])),
        ((181, 97), T.Compose([T.Resize((70, 90), antialias=False), T.CenterCrop(64)])),
        ((210, 160), T.Compose([T.Resize((81, 80), antialias=False), T.CenterCrop(65)])),  # crop edges x.5: rounded
        ((97, 181), T.Compose([T.Resize((64, 32), antialias=False)])),  # Re-ID: no crop
    ],
)
def test_input_view_matches_where_torchvision_moves_pixels(image_size, transform):
    # Resampling a linear function is exact away from the borders, so after torchvision's own
    # transform every interior output pixel still holds the image coordinates it came from; the
    # view must map that output pixel's centre to the same point.  (antialias=False: the antialiasing
    # filter's edge handling bends a linear function by a few hundredths of a pixel; the geometry
    # it resizes to is the same.)
    out = transform(_coordinate_image(*image_size))
    view = input_view(image_size, *transform_sizes(transform))
    assert view.input_size == (out.shape[2], out.shape[1])
    ys, xs = torch.meshgrid(torch.arange(out.shape[1]) + 0.5, torch.arange(out.shape[2]) + 0.5, indexing="ij")
    mapped = torch.from_numpy(view.to_image(torch.stack([xs, ys], dim=-1).numpy())).float()
    (left, top, right, bottom), margin = view.box, 3 * max(view.scale)
    interior = (
        (mapped[..., 0] > max(left, 0) + margin)
        & (mapped[..., 0] < min(right, image_size[0]) - margin)
        & (mapped[..., 1] > max(top, 0) + margin)
        & (mapped[..., 1] < min(bottom, image_size[1]) - margin)
    )
    assert interior.sum() > 0.3 * interior.numel()
    torch.testing.assert_close(out.permute(1, 2, 0)[interior], mapped[interior], atol=2e-3, rtol=0)


def test_transform_sizes_refuses_random_geometry():
    with pytest.raises(LocalizationError, match="RandomCrop"):
        transform_sizes(T.Compose([T.Resize((64, 64), antialias=False), T.RandomCrop(56)]))


def test_pointing_game_on_a_hand_computed_case():
    # Image 100x80, Resize((40, 50)) -> 50x40 (scale 2), CenterCrop(32) -> left 9, top 4: an input pixel
    # (x, y) is the image pixel (2 (x + 9), 2 (y + 4)).  Patches are 8x8 on a 4x4 grid.
    transform = T.Compose([T.Resize((40, 50), antialias=False), T.CenterCrop(32), T.ToTensor()])
    view = input_view((100, 80), *transform_sizes(transform))
    assert view.box == (18.0, 8.0, 82.0, 72.0)
    box = (50, 25, 20, 20)  # x 50..70, y 25..45
    # patch (row 1, col 2): centre (20, 12) -> (58, 32), inside.  patch (0, 0): (4, 4) -> (26, 16), outside.
    hit_rollout = np.full(16, 0.01)
    hit_rollout[1 * 4 + 2] = 1.0
    miss_rollout = np.full(16, 0.01)
    miss_rollout[0] = 1.0
    hits, chance = pointing_hits(np.stack([hit_rollout, miss_rollout]), (4, 4), [view, view], [box, box])
    assert hits.tolist() == [True, False]
    # centres in image x: 26, 42, 58, 74 and y: 16, 32, 48, 64 -> only (58, 32) lies in the box
    assert chance.tolist() == [1 / 16, 1 / 16]


def test_patch_centres_are_row_major():
    centres = patch_centres((2, 3), (30, 20))
    assert centres.tolist() == [[5, 5], [15, 5], [25, 5], [5, 15], [15, 15], [25, 15]]


def test_pointing_hits_rejects_a_rollout_of_another_grid():
    view = input_view((32, 32), (32, 32))
    with pytest.raises(LocalizationError, match="4x4"):
        pointing_hits(np.zeros((1, 15)), (4, 4), [view], [(0, 0, 1, 1)])


@torch.no_grad()
def pointing_game(model, dataset, batch_size=8):
    """The pointing game of ``model`` over the records of ``dataset`` with a box, computed plainly
    image by image: the reference the evaluator's per-batch :func:`record_pointing` is checked against."""
    steps = dataset.transform.transforms
    resize_h, resize_w = next(step.size for step in steps if isinstance(step, T.Resize))
    crop_h, crop_w = next((step.size for step in steps if isinstance(step, T.CenterCrop)), (resize_h, resize_w))
    left, top = round((resize_w - crop_w) / 2), round((resize_h - crop_h) / 2)  # torchvision's CenterCrop
    rows, cols = model.grid_size
    boxed = [i for i, record in enumerate(dataset.records) if record.bbox is not None]
    device = next(model.parameters()).device
    model.eval()
    hits, chance = [], []
    for batch in DataLoader(Subset(dataset, boxed), batch_size=batch_size):
        rollouts = model.forward_branches(batch["image"].to(device))["rollout"]
        for index, rollout in zip(batch["index"].tolist(), rollouts):
            record = dataset.records[index]
            with Image.open(record.path) as image:
                width, height = image.size
            height -= getattr(record, "crop_bottom", 0)
            scale_x, scale_y = width / resize_w, height / resize_h
            x, y, w, h = record.bbox
            inside = []
            for row in range(rows):
                for col in range(cols):
                    centre_x = scale_x * ((col + 0.5) * crop_w / cols) + scale_x * left
                    centre_y = scale_y * ((row + 0.5) * crop_h / rows) + scale_y * top
                    inside.append(x <= centre_x <= x + w and y <= centre_y <= y + h)
            hits.append(inside[int(rollout.argmax())])
            chance.append(sum(inside) / len(inside))
    return PointingGameResult(score=float(np.mean(hits)), chance=float(np.mean(chance)), hits=np.array(hits),
                              count=len(hits))


class _ScriptedModel(torch.nn.Module):
    """Returns prepared rollouts batch after batch, so the pointing game's plumbing (loading, sizes,
    transform geometry, order) is tested against hand-computed hits."""

    grid_size = (4, 4)

    def __init__(self, rollouts):
        super().__init__()
        self.rollouts = list(rollouts)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward_branches(self, images):
        assert images.shape[1:] == (3, 32, 32)
        rollout, self.rollouts = self.rollouts[: images.shape[0]], self.rollouts[images.shape[0] :]
        return {"rollout": torch.tensor(np.stack(rollout))}


def _peak(row, col):
    rollout = np.full(16, 0.01)
    rollout[row * 4 + col] = 1.0
    return rollout


def _boxed_records(tmp_path):
    for name, size in (("a.png", (100, 80)), ("b.png", (60, 90)), ("c.png", (50, 50))):
        Image.new("RGB", size).save(tmp_path / name)
    return [
        # 100x80: input (x, y) -> image (2 (x + 9), 2 (y + 4)); patch (1, 2) -> (58, 32), in the box
        FGVCRecord(str(tmp_path / "a.png"), 0, bbox=(50, 25, 20, 20)),
        FGVCRecord(str(tmp_path / "c.png"), 0, bbox=None),  # no box: left out
        # 60x90: scale (1.2, 2.25), crop left 9, top 4: patch (3, 0) -> (15.6, 72), in the box;
        # patch (0, 3) -> (45.6, 18), outside
        FGVCRecord(str(tmp_path / "b.png"), 0, bbox=(5, 60, 15, 15)),
        FGVCRecord(str(tmp_path / "b.png"), 0, bbox=(5, 60, 15, 15)),
    ]


@pytest.mark.parametrize("game", ["reference", "record_pointing"])
def test_pointing_game_over_a_dataset(tmp_path, game):
    dataset = ImageDataset(_boxed_records(tmp_path), T.Compose([T.Resize((40, 50)), T.CenterCrop(32), T.ToTensor()]))
    model = _ScriptedModel([_peak(1, 2), _peak(3, 0), _peak(0, 3)])
    if game == "reference":
        result = pointing_game(model, dataset, batch_size=2)
    else:  # as the evaluator plays it: every record, boxed or not, batch after batch
        model = _ScriptedModel([_peak(1, 2), _peak(0, 0), _peak(3, 0), _peak(0, 3)])
        batches = [record_pointing(model.forward_branches(batch["image"])["rollout"], model.grid_size,
                                   dataset.transform, [dataset.records[i] for i in batch["index"].tolist()])
                   for batch in DataLoader(dataset, batch_size=2)]
        result = PointingGameResult.from_arrays(torch.cat([h for h, _ in batches]), torch.cat([c for _, c in batches]))
    assert result.hits.tolist() == [True, True, False]
    assert result.score == pytest.approx(2 / 3) and result.count == 3
    assert result.as_dict()["pointing_game"] == pytest.approx(100 * 2 / 3)


def test_record_pointing_marks_images_without_a_box(tmp_path):
    Image.new("RGB", (100, 80)).save(tmp_path / "a.png")
    records = [FGVCRecord(str(tmp_path / "a.png"), 0, bbox=(50, 25, 20, 20)), FGVCRecord(str(tmp_path / "a.png"), 0)]
    transform = T.Compose([T.Resize((40, 50)), T.CenterCrop(32), T.ToTensor()])
    hits, chance = record_pointing(torch.tensor(np.stack([_peak(1, 2), _peak(1, 2)])), (4, 4), transform, records)
    assert hits[0] == 1.0 and torch.isnan(hits[1]) and chance[0] == 1 / 16 and torch.isnan(chance[1])
    result = PointingGameResult.from_arrays(hits, chance)
    assert (result.score, result.count) == (1.0, 1)
