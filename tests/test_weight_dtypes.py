"""Weight files whose tensors have another dtype than the model's: integers are refused (they would
be truncated silently), another floating precision is converted and said so — for
``model.init_from``, ``model.pretrained=PATH`` and a checkpoint given to a command."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import dcal
from dcal.config import load_config
from dcal.engine.checkpoint import read_checkpoint, save_checkpoint
from dcal.engine.trained_model import model_from_checkpoint
from dcal.engine.init_from import init_from
from dcal.engine.model_setup import build_model
from dcal.errors import CheckpointError
from dcal.model.weight_dtypes import WeightsConvertedWarning

TINY = ["model.timm_kwargs={patch_size: 8, embed_dim: 16, depth: 1, num_heads: 1}", "model.pwca_blocks=1",
        "data.img_size=[16, 16]"]


@pytest.fixture
def model():
    return build_model(load_config(overrides=TINY), 3, pretrained=False)


def _cast(state, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def test_init_from_refuses_integer_tensors_naming_them(tmp_path, model):
    path = tmp_path / "int.safetensors"
    save_file(_cast(model.state_dict(), torch.int32), str(path))
    with pytest.raises(CheckpointError, match=r"not floating point.*backbone\.\S+ \(int32, model float32\)") as error:
        init_from(build_model(load_config(overrides=TINY), 3, pretrained=False), path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_init_from_converts_half_precision_and_says_so(tmp_path, model):
    path = tmp_path / "half.safetensors"
    half = _cast(model.state_dict(), torch.float16)
    save_file(half, str(path))
    fresh = build_model(load_config(overrides=TINY), 3, pretrained=False)
    report = init_from(fresh, path)
    assert fresh.state_dict()["backbone.cls_token"].dtype == torch.float32
    assert torch.equal(fresh.state_dict()["backbone.cls_token"], half["backbone.cls_token"].float())
    assert "backbone.cls_token float16 -> float32" in report.converted
    assert "converted to the model's dtype" in report.summary()


def test_pretrained_path_refuses_integers_and_converts_bfloat16(tmp_path):
    kwargs = dict(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=1)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=0, **kwargs)
    integers = tmp_path / "int.pth"
    torch.save(_cast(vit.state_dict(), torch.int64), integers)
    with pytest.raises(CheckpointError, match=r"backbone weights .*int\.pth: \d+ tensors are not floating point.*int64"):
        dcal.create_model("vit_tiny_patch16_224", 3, pretrained=integers, **kwargs)
    brain = tmp_path / "bf16.safetensors"
    save_file(_cast(vit.state_dict(), torch.bfloat16), str(brain))
    with pytest.warns(WeightsConvertedWarning, match=r"pos_embed bfloat16 -> float32"):
        built = dcal.create_model("vit_tiny_patch16_224", 3, pretrained=brain, **kwargs)
    assert torch.equal(built.backbone.pos_embed, vit.pos_embed.detach().bfloat16().float())


def test_checkpoint_with_integer_weights_is_refused(tmp_path, model):
    config = load_config(overrides=TINY)
    path = tmp_path / "int.pt"
    save_checkpoint({"model": _cast(model.state_dict(), torch.int32), "config": config.to_dict(), "task": "fgvc",
                     "num_classes": 3}, path)
    with pytest.raises(CheckpointError, match=r"weights in .*int\.pt: \d+ tensors are not floating point"):
        model_from_checkpoint(read_checkpoint(path), path)
