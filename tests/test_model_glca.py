"""GLCA depends on the patches it queries (paper §3.2), the query selections, and gradient
checkpointing, each against a plain computation or the property it must have."""

import pytest
import torch

import dcal
from dcal.errors import ConfigError
from dcal.model.pairing import derangement
from dcal.model.selection import num_selected

TINY = dict(embed_dim=48, depth=3, num_heads=2)
NAMES = ("vit_base_patch16_224", "deit_tiny_distilled_patch16_224")


def last_block_input(model, x):
    captured = {}
    hook = model.backbone.blocks[-1].register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))
    with torch.no_grad():
        model.backbone.forward_features(x)
    hook.remove()
    return captured["x"]


def other_patches(selected, num_patches):
    """For each row, as many patches as selected, none of them selected."""
    return torch.stack([torch.tensor([i for i in range(num_patches) if i not in set(row.tolist())][: selected.shape[1]])
                        for row in selected])


@pytest.mark.parametrize("name", NAMES)
def test_glca_feature_follows_the_selected_set_not_its_order(name):
    torch.manual_seed(0)
    model = dcal.create_model(name, 5, img_size=64, glca_ratio=0.3, **TINY).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_branches(x)
        sel = out["selected"]
        shuffled = sel[:, torch.randperm(sel.shape[1])]
        reordered = model.forward_branches(x, selected=shuffled)
        moved = model.forward_branches(x, selected=other_patches(sel, out["rollout"].shape[1]))
        one = model.forward_branches(x, selected=sel[:, :1])
    assert torch.equal(reordered["selected"], shuffled)
    assert torch.allclose(reordered["glca"]["feat"], out["glca"]["feat"], atol=1e-5, rtol=0)
    assert (moved["glca"]["feat"] - out["glca"]["feat"]).abs().max() > 1e-2
    assert (one["glca"]["feat"] - out["glca"]["feat"]).abs().max() > 1e-2
    for other in (reordered, moved, one):  # the selection never reaches SA
        assert torch.equal(other["sa"]["feat"], out["sa"]["feat"])


@pytest.mark.parametrize("name", NAMES)
def test_cls_readout_ignores_the_selection(name):
    """The other reading (prefix tokens among the queries, class token read out) is, as argued in
    dcal.model.glca, the same whatever is selected."""
    torch.manual_seed(0)
    model = dcal.create_model(name, 5, img_size=64, glca_ratio=0.3, glca_readout="cls", **TINY).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_branches(x)
        moved = model.forward_branches(x, selected=other_patches(out["selected"], out["rollout"].shape[1]))
        one = model.forward_branches(x, selected=out["selected"][:, :1])
    assert torch.allclose(moved["glca"]["feat"], out["glca"]["feat"], atol=1e-5, rtol=0)
    assert torch.allclose(one["glca"]["feat"], out["glca"]["feat"], atol=1e-5, rtol=0)
    assert model.glca_readout == "cls"


def test_glca_feature_is_the_formula_written_out():
    """y = x_sel + Attn(LN(x_sel) -> Q, LN(x) -> K, V); z = y + MLP(LN(y)); feature = mean_k LN_f(z),
    with the weights of GLCA's own block written out as matrices."""
    torch.manual_seed(3)
    model = dcal.create_model("vit_base_patch16_224", 4, img_size=64, glca_ratio=0.25, **TINY).eval()
    with torch.no_grad():
        for p in model.glca.parameters():  # GLCA's own weights, no longer a copy of the last block
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 3, 64, 64)
    x_prev = last_block_input(model, x)
    with torch.no_grad():
        out = model.forward_branches(x)
    g = model.glca.block
    heads, dim = g.attn.num_heads, x_prev.shape[-1]
    d = dim // heads
    W, b = g.attn.qkv.weight, g.attn.qkv.bias
    Wq, Wk, Wv = W[:dim], W[dim:2 * dim], W[2 * dim:]
    bq, bk, bv = b[:dim], b[dim:2 * dim], b[2 * dim:]
    features = []
    with torch.no_grad():
        for i in range(2):
            tokens = x_prev[i]                                   # (P+N, D)
            x_sel = tokens[1 + out["selected"][i]]               # (k, D): the selected patch tokens
            ln_x, ln_sel = g.norm1(tokens), g.norm1(x_sel)
            q, k, v = ln_sel @ Wq.T + bq, ln_x @ Wk.T + bk, ln_x @ Wv.T + bv
            head_out = []
            for h in range(heads):
                s = slice(h * d, (h + 1) * d)
                weights = torch.softmax(q[:, s] @ k[:, s].T / d ** 0.5, dim=-1)
                head_out.append(weights @ v[:, s])
            y = x_sel + torch.cat(head_out, dim=1) @ g.attn.proj.weight.T + g.attn.proj.bias
            z = y + g.mlp(g.norm2(y))
            features.append(model.glca.norm(z).mean(0))
    assert torch.allclose(out["glca"]["feat"], torch.stack(features), atol=1e-5, rtol=0)


def test_last_selection_is_the_top_of_the_last_blocks_class_attention():
    torch.manual_seed(0)
    model = dcal.create_model("vit_base_patch16_224", 5, img_size=64, glca_ratio=0.3, glca_selection="last", **TINY).eval()
    x = torch.randn(3, 3, 64, 64)
    x_prev = last_block_input(model, x)
    block = model.backbone.blocks[-1]
    with torch.no_grad():
        out = model.forward_branches(x)
        h = block.norm1(x_prev)
        q, k, _ = block.attn.qkv(h).reshape(3, h.shape[1], 3, 2, 24).permute(2, 0, 3, 1, 4)
        class_attention = (q[:, :, :1] @ k.transpose(-2, -1) * block.attn.scale).softmax(-1).mean(1)[:, 0, 1:]
    k_sel = num_selected(16, 0.3)
    expected = class_attention.topk(k_sel, dim=1).indices
    assert torch.equal(out["selected"].sort(1).values, expected.sort(1).values)
    rollout_model = dcal.create_model("vit_base_patch16_224", 5, img_size=64, glca_ratio=0.3, **TINY).eval()
    rollout_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        rollout_out = rollout_model.forward_branches(x)
    assert torch.equal(rollout_out["rollout"], out["rollout"])  # the rollout is reported either way
    assert torch.equal(rollout_out["selected"], rollout_out["rollout"].topk(k_sel, dim=1).indices)


def test_random_selection_is_repeatable_in_eval_and_drawn_in_training():
    torch.manual_seed(0)
    model = dcal.create_model("vit_base_patch16_224", 5, img_size=64, glca_ratio=0.3, glca_selection="random", **TINY)
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        first, second = model.forward_branches(x), model.forward_branches(x)
        scores = model(x)
    assert torch.equal(first["selected"], second["selected"])
    assert torch.allclose(scores, first["sa"]["logits"].softmax(-1) + first["glca"]["logits"].softmax(-1), atol=1e-6)
    k = num_selected(16, 0.3)
    assert first["selected"].shape == (4, k)
    assert all(len(set(row.tolist())) == k for row in first["selected"])
    model.train()
    draws = {tuple(model.forward_branches(x)["selected"][0].tolist()) for _ in range(5)}
    assert len(draws) > 1
    # uniform: over many draws every patch is chosen about k/N of the time
    counts = torch.zeros(16)
    for _ in range(200):
        chosen = model.forward_features(x[:1], rollout=False)["selected"][0]
        counts[chosen] += 1
    assert counts.min() > 0.5 * 200 * k / 16 and counts.max() < 1.5 * 200 * k / 16


def test_selected_argument_is_checked():
    model = dcal.create_model("vit_base_patch16_224", 5, img_size=64, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    for bad in (torch.tensor([[0, 16], [1, 2]]), torch.zeros(3, 2, dtype=torch.long), torch.zeros(2, 2)):
        with pytest.raises(ConfigError, match="selected"):
            model.forward_branches(x, selected=bad)
    base = dcal.create_model("vit_base_patch16_224", 5, img_size=64, glca=False, **TINY).eval()
    with pytest.raises(ConfigError, match="GLCA is off"):
        base.forward_branches(x, selected=torch.zeros(2, 1, dtype=torch.long))
    for key, value in (("glca_readout", "mean"), ("glca_selection", "best")):
        with pytest.raises(ConfigError, match=key):
            dcal.create_model("vit_base_patch16_224", 5, img_size=64, **{key: value}, **TINY)



@pytest.mark.parametrize("selection", ["rollout", "last", "random"])
def test_every_selection_is_distinct_patches_and_a_repeat_is_refused(selection):
    """k distinct indices per image whatever the selection (k = N here, so any repeat would show),
    and a caller's selection that repeats a patch is refused, naming the row and the index."""
    model = dcal.create_model("vit_base_patch16_224", 5, img_size=32, glca_ratio=1.0, glca_selection=selection, **TINY)
    x = torch.randn(3, 3, 32, 32)
    for training in (True, False):
        with torch.no_grad():
            selected = model.train(training).forward_branches(x)["selected"]
        assert selected.shape == (3, 4)
        assert all(sorted(row.tolist()) == [0, 1, 2, 3] for row in selected)
    repeated = torch.tensor([[0, 1], [2, 2], [3, 1]])
    with pytest.raises(ConfigError, match="selected repeats patch index 2 in row 1"):
        model.forward_branches(x, selected=repeated)


@pytest.mark.parametrize("task", ["fgvc", "reid"])
def test_gradient_checkpointing_gives_the_same_gradients(task):
    from dcal.engine.losses import DCALLoss

    torch.manual_seed(0)
    model = dcal.create_model("deit_tiny_distilled_patch16_224", 4, task=task, img_size=64, drop_path_rate=0.2, **TINY)
    criterion = DCALLoss.for_model(model)
    with torch.no_grad():
        for p in criterion.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x, labels, pairs = torch.randn(8, 3, 64, 64), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), derangement(8)

    def grads(enable):
        model.set_grad_checkpointing(enable)
        model.zero_grad(set_to_none=True)
        criterion.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same stochastic-depth draws
        loss, _ = criterion(model.forward_branches(x, pair_index=pairs), labels)
        loss.backward()
        named = list(model.named_parameters()) + [("loss." + n, p) for n, p in criterion.named_parameters()]
        return loss.detach(), {n: p.grad.clone() for n, p in named if p.grad is not None}

    calls = []
    hook = model.backbone.blocks[0].mlp.register_forward_hook(lambda m, a, o: calls.append(1))
    plain_loss, plain = grads(False)
    plain_calls = len(calls)
    ckpt_loss, recomputed = grads(True)
    hook.remove()
    assert len(calls) - plain_calls > plain_calls  # the block ran again in the backward pass (recomputation stops early once it has what it needs)
    assert model.grad_checkpointing
    assert torch.equal(plain_loss, ckpt_loss)
    assert plain.keys() == recomputed.keys() and any(n.startswith("loss.") for n in plain) and len(plain) > 20
    for name, grad in plain.items():
        assert torch.allclose(grad, recomputed[name], atol=1e-6, rtol=0), name
