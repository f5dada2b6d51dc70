"""The SA, PWCA and GLCA streams against timm's own forward and plain re-computations."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from timm.layers import HybridEmbed, StdConv2dSame
from timm.models.resnetv2 import ResNetV2

import dcal
from dcal.errors import ConfigError
from dcal.model.pairing import derangement
from dcal.model.selection import num_selected

TINY = dict(embed_dim=48, depth=3, num_heads=2)


def small_resnet_embed():
    """The R50+ViT hybrid's stem and stages (ResNetV2, GroupNorm, weight-standardised convs,
    stride 16) with one bottleneck per stage and narrow widths, so the test runs in a second."""
    resnet = ResNetV2(
        layers=(1, 1, 1), channels=(128, 256, 512), num_classes=0, global_pool="", preact=False,
        stem_type="same", conv_layer=partial(StdConv2dSame, eps=1e-8),
    )
    return partial(HybridEmbed, backbone=resnet)


CASES = {
    "vit": ("vit_base_patch16_224", 64, TINY),
    "distilled_deit_256x128": ("deit_tiny_distilled_patch16_224", (256, 128), TINY),
    "r50_hybrid": ("vit_base_r50_s16_224", (128, 64), dict(TINY, embed_layer=small_resnet_embed())),
}


def images(model, batch=3):
    return torch.randn(batch, 3, *model.backbone.patch_embed.img_size)


@pytest.fixture(scope="module", params=sorted(CASES))
def model(request):
    torch.manual_seed(0)
    name, size, kwargs = CASES[request.param]
    return dcal.create_model(name, 7, img_size=size, **kwargs).eval()


def test_sa_feature_is_timms_forward(model):
    x = images(model)
    with torch.no_grad():
        out = model.forward_branches(x, pair_index=derangement(3))
        reference = model.backbone.forward_head(model.backbone.forward_features(x), pre_logits=True)
    assert set(out) >= {"sa", "glca", "pwca", "rollout", "selected"}
    assert torch.allclose(out["sa"]["feat"], reference, atol=1e-5, rtol=0)
    assert out["sa"]["logits"].shape == (3, 7)
    # the same with autograd on (the training code path: explicit attention kept for backward)
    assert torch.allclose(model.forward_branches(x)["sa"]["feat"], reference, atol=1e-5, rtol=0)


def test_pwca_paired_with_itself_is_sa_and_with_others_is_not(model):
    x = images(model)
    with torch.no_grad():
        same = model.forward_branches(x, pair_index=torch.arange(3))
        other = model.forward_branches(x, pair_index=torch.tensor([1, 2, 0]))
    assert torch.allclose(same["pwca"]["feat"], same["sa"]["feat"], atol=1e-5, rtol=0)
    assert torch.allclose(same["pwca"]["logits"], same["sa"]["logits"], atol=1e-5, rtol=0)
    assert (other["pwca"]["feat"] - other["sa"]["feat"]).abs().max() > 1e-3


def test_glca_is_the_last_block_on_selected_queries_with_its_own_weights(model):
    """GLCA on the selected queries equals the GLCA block run on all tokens of x_{L-1}, then those
    rows taken (a block's output row depends only on its own query), normed and averaged; its
    weights are not SA's."""
    x = images(model)
    captured = {}
    hook = model.backbone.blocks[-1].register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))
    with torch.no_grad():
        model.backbone.forward_features(x)  # timm's own forward gives x_{L-1}
        out = model.forward_branches(x)
    hook.remove()
    glca, prefix = model.glca, model.num_prefix_tokens
    with torch.no_grad():
        z = glca.norm(glca.block(captured["x"]))
    rows = out["selected"] + prefix
    expected = z.gather(1, rows.unsqueeze(-1).expand(-1, -1, z.shape[-1])).mean(1)
    assert torch.allclose(out["glca"]["feat"], expected, atol=1e-5, rtol=0)

    sa_before = out["sa"]["logits"]
    with torch.no_grad():
        for p in list(model.glca.parameters()) + list(model.glca_head.parameters()):
            p.add_(torch.randn_like(p))
        after = model.forward_branches(x)
    assert torch.equal(after["sa"]["logits"], sa_before)
    assert (after["glca"]["logits"] - out["glca"]["logits"]).abs().max() > 1e-3
    shared = {p.data_ptr() for p in model.backbone.parameters()} & {p.data_ptr() for p in model.glca.parameters()}
    assert not shared


def test_pwca_matches_plain_recomputation():
    """PWCA block by block written out with timm's modules, hooks for I2's SA keys/values and an
    explicit softmax over the 2(P+N) keys."""
    torch.manual_seed(1)
    model = dcal.create_model("deit_tiny_distilled_patch16_224", 4, img_size=(64, 32), pwca_blocks=2, **TINY).eval()
    vit = model.backbone
    x, pairs = torch.randn(4, 3, 64, 32), torch.tensor([2, 0, 3, 1])
    sa_qkv = []
    hooks = [b.attn.qkv.register_forward_hook(lambda m, a, o: sa_qkv.append(o)) for b in vit.blocks]
    with torch.no_grad():
        vit.forward_features(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        t = vit._pos_embed(vit.patch_embed(x))
        for index, block in enumerate(vit.blocks):
            attn = block.attn
            B, T, D = t.shape
            q, k, v = attn.qkv(block.norm1(t)).reshape(B, T, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
            if index < 2:
                _, k2, v2 = sa_qkv[index].reshape(B, T, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
                k, v = torch.cat([k, k2[pairs]], 2), torch.cat([v, v2[pairs]], 2)
            weights = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)
            t = t + attn.proj((weights @ v).transpose(1, 2).reshape(B, T, D))
            t = t + block.mlp(block.norm2(t))
        t = vit.norm(t)
        expected = (t[:, 0] + t[:, 1]) / 2
        out = model.forward_branches(x, pair_index=pairs)
    assert torch.allclose(out["pwca"]["feat"], expected, atol=1e-5, rtol=0)


def test_selected_are_the_top_rollout_patches():
    for ratio, expected_k in ((0.1, 2), (0.3, 5), (0.01, 1)):
        model = dcal.create_model("vit_base_patch16_224", 3, img_size=64, glca_ratio=ratio, **TINY).eval()
        with torch.no_grad():
            out = model.forward_branches(torch.randn(2, 3, 64, 64))
        n = 16
        assert num_selected(n, ratio) == expected_k == max(1, round(ratio * n))
        assert out["selected"].shape == (2, expected_k) and out["rollout"].shape == (2, n)
        for rollout, chosen in zip(out["rollout"], out["selected"]):
            assert len(set(chosen.tolist())) == expected_k
            rest = torch.ones(n, dtype=torch.bool)
            rest[chosen] = False
            assert rollout[chosen].min() >= rollout[rest].max()


def test_defaults_and_switches():
    fgvc = dcal.create_model("vit_base_patch16_224", 3, img_size=32, **TINY)
    reid = dcal.create_model("vit_base_patch16_224", 3, task="reid", img_size=32, **TINY)
    assert (fgvc.glca_ratio, reid.glca_ratio, fgvc.pwca_blocks) == (0.1, 0.3, 3)
    assert fgvc.num_prefix_tokens == 1 and fgvc.grid_size == (2, 2) and fgvc.task == "fgvc"
    base = dcal.create_model("vit_base_patch16_224", 3, img_size=32, glca=False, pwca_blocks=0, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = base.forward_branches(x)
        assert "glca" not in out and "pwca" not in out
        assert torch.allclose(base(x), out["sa"]["logits"].softmax(-1))
    with pytest.raises(ConfigError, match="PWCA is off"):
        base.forward_branches(x, pair_index=torch.tensor([1, 0]))
    # The contract's default T = 12 means every block; on a 3-block backbone that is 3.
    assert dcal.create_model("vit_base_patch16_224", 3, img_size=32, pwca_blocks=4, **TINY).pwca_blocks == 3
    assert dcal.create_model("vit_base_patch16_224", 3, img_size=32, pwca_blocks=2, **TINY).pwca_blocks == 2
    with pytest.raises(ConfigError, match="pwca_blocks"):
        dcal.create_model("vit_base_patch16_224", 3, img_size=32, pwca_blocks=-1, **TINY)
    with pytest.raises(ConfigError, match="unknown timm backbone"):
        dcal.create_model("no_such_vit", 3)
    with pytest.raises(ConfigError, match="class token"):
        dcal.create_model("vit_base_patch16_224", 3, img_size=32, class_token=False, global_pool="avg", **TINY)


def test_fgvc_inference_adds_the_two_softmaxes():
    model = dcal.create_model("vit_base_patch16_224", 5, img_size=32, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model.forward_branches(x)
        scores = model(x)
    assert torch.allclose(scores, out["sa"]["logits"].softmax(-1) + out["glca"]["logits"].softmax(-1))


def test_reid_inference_is_normalised_concat_of_features_before_the_bnneck():
    model = dcal.create_model("deit_tiny_patch16_224", 5, task="reid", img_size=(64, 32), **TINY)
    x = torch.randn(4, 3, 64, 32)
    model.train()
    branches = model(x, derangement(4))  # train mode: the branch dict
    assert set(branches["sa"]) == {"feat", "bn_feat", "logits"}
    model.eval()
    with torch.no_grad():
        out = model.forward_branches(x)
        feats = model(x)
    assert feats.shape == (4, 2 * 48)
    assert torch.allclose(feats.norm(dim=1), torch.ones(4), atol=1e-6)
    expected = F.normalize(torch.cat([out["sa"]["feat"], out["glca"]["feat"]], 1), dim=1)
    assert torch.allclose(feats, expected, atol=1e-6)
    assert not model.sa_head.bn.bias.requires_grad
    # neck_feat="after": the same weights read after the BatchNorms
    after = dcal.create_model("deit_tiny_patch16_224", 5, task="reid", img_size=(64, 32), neck_feat="after", **TINY)
    after.load_state_dict(model.state_dict())
    after.eval()
    with torch.no_grad():
        expected_after = F.normalize(torch.cat([out["sa"]["bn_feat"], out["glca"]["bn_feat"]], 1), dim=1)
        assert torch.allclose(after(x), expected_after, atol=1e-6)
    assert (expected_after - feats).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="neck_feat"):
        dcal.create_model("deit_tiny_patch16_224", 5, task="reid", img_size=(64, 32), neck_feat="middle", **TINY)


def test_bfloat16_autocast_forward_and_backward_close_to_float32():
    torch.manual_seed(0)
    model = dcal.create_model("deit_tiny_distilled_patch16_224", 3, img_size=(64, 32), **TINY).train()
    x, pairs = torch.randn(4, 3, 64, 32), derangement(4)
    selected = model.eval().forward_branches(x)["selected"]  # the same queries in both precisions
    model.train()

    def run(bf16):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.forward_branches(x, pair_index=pairs, selected=selected)
            loss = sum(out[b]["logits"].float().logsumexp(-1).mean() for b in ("sa", "glca", "pwca"))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(1)
    loss32, grads32 = run(False)
    torch.manual_seed(1)  # the same stochastic-depth draws
    loss16, grads16 = run(True)
    assert torch.isfinite(loss16)
    assert abs(loss16 - loss32) < 2e-2 * abs(loss32)
    for name in ("glca.block.attn.qkv.weight", "backbone.blocks.0.mlp.fc1.weight", "sa_head.fc.weight"):
        g32, g16 = grads32[name], grads16[name]
        assert torch.isfinite(g16).all()
        assert (g16 - g32).norm() <= 0.1 * g32.norm(), name
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores16 = model(torch.randn(2, 3, 64, 32)).float()
    assert torch.isfinite(scores16).all()


def test_average_pooling_backbone_reads_like_timm():
    """global_pool='avg' (fc_norm instead of the final norm): SA is timm's pre-logits; GLCA
    averages its own selected patch tokens through its own copy of fc_norm."""
    model = dcal.create_model("vit_base_patch16_224", 3, img_size=64, global_pool="avg", **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    captured = {}
    hook = model.backbone.blocks[-1].register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))
    with torch.no_grad():
        reference = model.backbone.forward_head(model.backbone.forward_features(x), pre_logits=True)
        out = model.forward_branches(x)
        hook.remove()
        rows = out["selected"] + 1
        z = model.glca.block(captured["x"])
        glca_tokens = z.gather(1, rows.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
        expected = model.glca.fc_norm(model.glca.norm(glca_tokens).mean(1))
    assert torch.allclose(out["sa"]["feat"], reference, atol=1e-5, rtol=0)
    assert torch.allclose(out["glca"]["feat"], expected, atol=1e-5, rtol=0)
    assert model.glca.fc_norm is not model.backbone.fc_norm


@pytest.mark.parametrize(
    "name,kwargs,rows",
    [
        ("vit_base_patch16_224", {}, 1),  # class-token pooling reads the class token only
        ("deit_tiny_distilled_patch16_224", {}, 2),  # the mean of class and distillation token
        ("vit_base_patch16_224", {"global_pool": "avg"}, 1 + 16),  # average pooling reads every token
    ],
)
def test_last_block_computes_only_the_rows_the_head_reads(name, kwargs, rows):
    """Patch rows of the last block that no head reads are not computed, in the SA and the PWCA
    stream, in training and at inference (that the features still equal timm's is tested above)."""
    model = dcal.create_model(name, 3, img_size=64, **kwargs, **TINY)
    seen = []
    hook = model.backbone.blocks[-1].mlp.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    model(torch.randn(2, 3, 64, 64), derangement(2))
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    hook.remove()
    assert seen == [rows, rows, rows]  # SA and PWCA in training, SA at inference


def test_both_training_attention_paths_agree(monkeypatch):
    """Under autograd the SA attention is explicit on the CPU and fused (map beside it) elsewhere;
    both give the same branches, rollout and gradients.  The second path is forced here on the CPU."""
    from dcal.model import attention

    torch.manual_seed(0)
    model = dcal.create_model("deit_tiny_distilled_patch16_224", 5, img_size=64, **TINY)
    x, pairs = torch.randn(4, 3, 64, 64), derangement(4)

    def run():
        model.zero_grad(set_to_none=True)
        out = model.forward_branches(x, pair_index=pairs)
        sum(out[b]["logits"].logsumexp(-1).sum() for b in ("sa", "glca", "pwca")).backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    explicit, explicit_grads = run()
    monkeypatch.setattr(attention, "EXPLICIT_BACKWARD_DEVICES", ())
    fused, fused_grads = run()
    assert torch.equal(explicit["selected"], fused["selected"])
    assert torch.allclose(explicit["rollout"], fused["rollout"], atol=1e-6)
    for branch in ("sa", "glca", "pwca"):
        assert torch.allclose(explicit[branch]["logits"], fused[branch]["logits"], atol=1e-5)
    assert explicit_grads.keys() == fused_grads.keys() and len(explicit_grads) > 10
    for name, grad in explicit_grads.items():
        assert torch.allclose(grad, fused_grads[name], atol=1e-5, rtol=1e-4), name
