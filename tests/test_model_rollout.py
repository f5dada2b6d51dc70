"""Attention rollout against the paper's formula written out with full matrix products."""

import pytest
import torch

import dcal


def timm_attention_maps(vit, x):
    """Each block's softmax attention (B, H, T, T) from timm's own unfused attention path (the
    probabilities are the input of ``attn.attn_drop``)."""
    maps, hooks = [], []
    for block in vit.blocks:
        block.attn.fused_attn = False
        hooks.append(block.attn.attn_drop.register_forward_pre_hook(lambda m, args: maps.append(args[0])))
    with torch.no_grad():
        vit.forward_features(x)
    for block, hook in zip(vit.blocks, hooks):
        hook.remove()
        block.attn.fused_attn = True
    return maps


def naive_rollout(maps, prefix):
    """Ŝ_L = S̄_L ⋯ S̄_1 with S̄_l = 0.5·mean_heads(S_l) + 0.5·I; the class token's row over patches."""
    tokens = maps[0].shape[-1]
    accumulated = torch.eye(tokens).double()
    for attention in maps:
        s_bar = 0.5 * attention.double().mean(1) + 0.5 * torch.eye(tokens).double()
        accumulated = s_bar @ accumulated
    return accumulated[:, 0, prefix:]


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
@pytest.mark.parametrize(
    "name,size", [("vit_base_patch16_224", (64, 64)), ("deit_tiny_distilled_patch16_224", (64, 48))]
)
def test_rollout_is_the_papers_formula(name, size, grad):
    torch.manual_seed(0)
    model = dcal.create_model(name, 3, img_size=size, embed_dim=48, depth=4, num_heads=3).eval()
    with torch.no_grad():  # sharper attention than the near-uniform initialisation
        for block in model.backbone.blocks:
            block.attn.qkv.weight.mul_(8)
    x = torch.randn(2, 3, *size)
    expected = naive_rollout(timm_attention_maps(model.backbone, x), model.num_prefix_tokens)
    with torch.set_grad_enabled(grad):
        out = model.forward_branches(x)
    assert not out["rollout"].requires_grad
    assert out["rollout"].shape == (2, model.grid_size[0] * model.grid_size[1])
    assert torch.allclose(out["rollout"].double(), expected, atol=1e-6, rtol=1e-5)
    assert expected.std(dim=1).min() > 1e-3  # the maps are not uniform, so the check means something
