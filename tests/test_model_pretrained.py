"""Backbone weights from local files, with position embeddings resampled to the input size."""

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

import dcal
from dcal.errors import CheckpointError

ARCH = dict(embed_dim=48, depth=2, num_heads=2)
NAME = "vit_base_patch16_224"


@pytest.fixture(scope="module")
def source():
    """A timm model at 224 (14×14 patches) with an ImageNet-style head, as a released file has."""
    torch.manual_seed(0)
    return timm.create_model(NAME, num_classes=10, **ARCH).eval()


def to_big_vision_npz(vit, path):
    """Write ``vit`` in the original JAX ViT ``.npz`` layout (the inverse of timm's ``_load_weights``)."""
    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    dim, heads = vit.embed_dim, vit.blocks[0].attn.num_heads
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
    }
    for i in range(len(vit.blocks)):
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        w[p + "LayerNorm_0/scale"], w[p + "LayerNorm_0/bias"] = sd[b + "norm1.weight"], sd[b + "norm1.bias"]
        w[p + "LayerNorm_2/scale"], w[p + "LayerNorm_2/bias"] = sd[b + "norm2.weight"], sd[b + "norm2.bias"]
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]
        for j, n in enumerate(("query", "key", "value")):
            w[p + f"MultiHeadDotProductAttention_1/{n}/kernel"] = qkv_w[j * dim:(j + 1) * dim].T.reshape(dim, heads, -1)
            w[p + f"MultiHeadDotProductAttention_1/{n}/bias"] = qkv_b[j * dim:(j + 1) * dim].reshape(heads, -1)
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = sd[b + "attn.proj.weight"].reshape(dim, heads, -1).transpose(1, 2, 0)
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = sd[b + "attn.proj.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def save(source, path):
    state = source.state_dict()
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    elif path.suffix == ".pth":
        torch.save({"model": state}, path)  # the DeiT release wrapping
    else:
        to_big_vision_npz(source, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".npz"])
@pytest.mark.parametrize("size", [448, (256, 128)], ids=["448", "256x128"])
def test_weights_file_loads_with_resampled_position_embeddings(source, tmp_path, suffix, size):
    path = tmp_path / f"weights{suffix}"
    save(source, path)
    model = dcal.create_model(NAME, 5, img_size=size, pretrained=path, **ARCH)
    vit = model.backbone
    rows, cols = (size, size) if isinstance(size, int) else size
    assert model.grid_size == (rows // 16, cols // 16)
    # timm resamples bicubic with antialiasing for its own checkpoints, bilinear for big_vision npz
    mode = dict(interpolation="bilinear", antialias=False) if suffix == ".npz" else {}
    expected = resample_abs_pos_embed(source.pos_embed, new_size=model.grid_size, num_prefix_tokens=1, **mode)
    assert torch.allclose(vit.pos_embed, expected, atol=1e-6)
    for key in ("blocks.1.attn.qkv.weight", "blocks.1.attn.proj.weight", "blocks.0.mlp.fc2.bias", "cls_token"):
        assert torch.allclose(vit.state_dict()[key], source.state_dict()[key], atol=1e-6), key
    # GLCA starts as a copy of the loaded last block
    assert torch.equal(model.glca.block.attn.qkv.weight, vit.blocks[-1].attn.qkv.weight)


def test_mismatched_file_names_missing_unexpected_and_mis_shaped_keys(tmp_path):
    deeper = timm.create_model(NAME, num_classes=0, embed_dim=48, depth=3, num_heads=2)
    path = tmp_path / "deeper.safetensors"
    save_file(deeper.state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"unexpected keys: blocks\.2\."):
        dcal.create_model(NAME, 5, pretrained=path, **ARCH)
    with pytest.raises(CheckpointError, match=r"missing keys: .*blocks\.3\.") as error:
        dcal.create_model(NAME, 5, pretrained=path, embed_dim=48, depth=4, num_heads=2)
    assert str(path) in str(error.value)
    wider = tmp_path / "wider.pth"
    torch.save(timm.create_model(NAME, num_classes=0, embed_dim=64, depth=2, num_heads=2).state_dict(), wider)
    with pytest.raises(CheckpointError, match=r"shape mismatches: .*blocks\.0\.attn\.qkv\.weight \(file \(192, 64\), model \(144, 48\)\)"):
        dcal.create_model(NAME, 5, pretrained=wider, **ARCH)


def test_unreadable_or_pickled_files_are_refused(tmp_path):
    pickled = tmp_path / "object.pth"
    torch.save({"model": object()}, pickled)  # not loadable with weights_only=True
    with pytest.raises(CheckpointError, match="object.pth"):
        dcal.create_model(NAME, 5, pretrained=pickled, **ARCH)
    with pytest.raises(CheckpointError, match="does not exist"):
        dcal.create_model(NAME, 5, pretrained=tmp_path / "absent.safetensors", **ARCH)
    other = tmp_path / "weights.onnx"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights format"):
        dcal.create_model(NAME, 5, pretrained=other, **ARCH)
