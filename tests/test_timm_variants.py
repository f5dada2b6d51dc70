"""A sample of timm's ViT family through ``dcal.create_model``: built with an SA feature equal to
timm's own forward, or refused with a DCALError saying why (``benchmarks/timm_vit_sweep.py`` sweeps
every name timm lists)."""

import pytest
import torch

import dcal
from dcal.errors import ConfigError, UnsupportedBackboneError

SMALL = dict(depth=2, embed_dim=32, num_heads=2)


@pytest.mark.parametrize("name, size, kwargs", [
    ("vit_small_patch14_reg4_dinov2", 28, SMALL),  # registers, layer scale, patch 14
    ("deit_tiny_distilled_patch16_224", 32, SMALL),  # class + distillation tokens
    ("vit_base_r50_s16_224", 32, dict(embed_dim=32, num_heads=2)),  # hybrid CNN stem
])
def test_built_variants_give_timms_sa_feature(name, size, kwargs):
    model = dcal.create_model(name, 3, img_size=size, **kwargs).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feature = model.forward_branches(x)["sa"]["feat"]
        reference = model.backbone.forward_head(model.backbone.forward_features(x), pre_logits=True)
    assert torch.allclose(feature, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, error, message", [
    ("vit_small_patch16_18x2_224", UnsupportedBackboneError, "block 0 is a ParallelThingsBlock; DCAL drives"),
    ("vit_base_patch16_xp_224", UnsupportedBackboneError, "block 0 is a ParallelScalingBlock; DCAL drives"),
    ("eva02_tiny_patch14_224", UnsupportedBackboneError, "is a Eva; DCAL needs a timm VisionTransformer"),
    ("vit_small_patch16_224", ConfigError, "timm cannot build backbone 'vit_small_patch16_224' with "),
])
def test_variants_dcal_cannot_drive_are_refused_saying_why(name, error, message):
    kwargs = dict(SMALL, global_pool="map_bogus") if error is ConfigError else SMALL
    with pytest.raises(error, match=message):
        dcal.create_model(name, 3, img_size=32 if "patch16" in name else 28, **kwargs)


def test_an_input_size_that_is_not_a_whole_number_of_patches_is_refused():
    with pytest.raises(ConfigError, match=r"img_size 100 is not a multiple of backbone "
                                          r"'vit_small_patch14_dinov2''s patch size 14x14; use e.g. 98 or 112"):
        dcal.create_model("vit_small_patch14_dinov2", 3, img_size=100, **SMALL)


@pytest.mark.parametrize("name, global_pool", [
    ("vit_small_patch16_224", "token"), ("vit_small_patch16_224", "avg"), ("vit_small_patch16_224", "avgmax"),
    ("vit_small_patch16_224", "max"), ("vit_small_patch14_reg4_dinov2", "avg"), ("deit_tiny_distilled_patch16_224", "token"),
])
def test_glca_pools_other_tokens_as_the_backbone_pools_its_own(name, global_pool):
    """GLCA's ``cls`` readout pools with the rule it copied from the backbone at construction."""
    model = dcal.create_model(name, 3, img_size=28 if "patch14" in name else 32, glca_readout="cls",
                              global_pool=global_pool, **SMALL).eval()
    vit = model.backbone
    tokens = torch.randn(2, vit.num_prefix_tokens + 5, 32)
    with torch.no_grad():
        reference = vit.forward_head(tokens, pre_logits=True) if "distilled" in name else vit.pool(tokens)
        assert torch.equal(model.glca.pool(tokens), reference)
    model.backbone.global_pool = "token" if global_pool != "token" else "avg"  # GLCA no longer reads the backbone
    assert torch.equal(model.glca.pool(tokens), reference)
