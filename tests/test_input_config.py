"""Input normalisation and interpolation come from the backbone's timm pretrained config, can be
overridden, and travel with the run into its transforms."""

import pytest
import timm
import timm.data
import torch
from PIL import Image

from dcal.config import load_config
from dcal.data.input_config import backbone_input_config, resolve_input_config, with_input_config
from dcal.data.transforms import eval_transform
from dcal.errors import ConfigError


@pytest.mark.parametrize("name,mean", [
    ("vit_base_patch16_224.orig_in21k", (0.5, 0.5, 0.5)),
    ("deit_tiny_patch16_224.fb_in1k", (0.485, 0.456, 0.406)),
])
def test_statistics_are_timms_for_the_backbone(name, mean):
    model = timm.create_model(name, pretrained=False, num_classes=0, depth=1, embed_dim=48, num_heads=2)
    reference = timm.data.resolve_model_data_config(model)  # timm's own answer for the built model
    got = backbone_input_config(name)
    assert got.mean == tuple(reference["mean"]) == mean
    assert got.std == tuple(reference["std"])
    assert got.interpolation == reference["interpolation"] == "bicubic"


def test_config_overrides_and_resolution_are_stored():
    config = load_config(None, ["model.backbone=deit_tiny_patch16_224"])
    assert config.data.mean is None
    resolved = with_input_config(config)
    assert resolved.data.mean == [0.485, 0.456, 0.406] and resolved.data.interpolation == "bicubic"
    assert with_input_config(resolved).to_dict() == resolved.to_dict()  # idempotent
    custom = load_config(None, ["data.mean=[0.1, 0.2, 0.3]", "data.interpolation=bilinear"])
    statistics = resolve_input_config(custom)
    assert statistics.mean == (0.1, 0.2, 0.3) and statistics.std == (0.5, 0.5, 0.5)
    assert statistics.interpolation == "bilinear"
    with pytest.raises(ConfigError, match="data.interpolation"):
        resolve_input_config(load_config(None, ["data.interpolation=cubic"]))
    with pytest.raises(ConfigError, match="data.std"):
        resolve_input_config(load_config(None, ["data.std=[0.5, 0.5]"]))


def test_eval_transform_normalises_with_the_backbones_statistics():
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    for backbone, mean, std in (("vit_base_patch16_224.orig_in21k", (0.5,) * 3, (0.5,) * 3),
                                ("deit_tiny_patch16_224.fb_in1k", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        pixel = eval_transform(load_config(None, [f"model.backbone={backbone}"]))(image)[:, 0, 0]
        expected = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(mean)) / torch.tensor(std)
        assert torch.allclose(pixel, expected, atol=1e-5), backbone
