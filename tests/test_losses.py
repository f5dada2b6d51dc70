"""The uncertainty-weighted DCAL loss, the batch-hard triplet loss and the optimiser's groups."""

import math

import pytest
import torch
from timm.optim import create_optimizer_v2

import dcal
from dcal.engine.losses import DCALLoss, batch_hard_triplet, uncertainty_weighted
from dcal.engine.optimizer import build_optimizer, build_scheduler, param_groups
from dcal.config import load_config
from dcal.errors import ConfigError
from dcal.model.pairing import derangement

TINY = dict(embed_dim=48, depth=2, num_heads=2)


def test_uncertainty_weighting_is_the_papers_formula():
    losses = {"sa": torch.tensor(2.0), "glca": torch.tensor(0.5), "pwca": torch.tensor(1.25)}
    weights = {"sa": torch.tensor(0.3), "glca": torch.tensor(-0.7), "pwca": torch.tensor(1.1)}
    expected = 0.5 * (
        math.exp(-0.3) * 2.0 + 0.3 + math.exp(0.7) * 0.5 - 0.7 + math.exp(-1.1) * 1.25 + 1.1
    )
    assert uncertainty_weighted(losses, weights).item() == pytest.approx(expected, rel=1e-6)


def test_fgvc_criterion_is_weighted_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    outputs = {b: {"feat": torch.randn(4, 8), "logits": torch.randn(4, 5)} for b in ("sa", "glca", "pwca")}
    targets = torch.tensor([0, 3, 3, 1])
    criterion = DCALLoss("fgvc", label_smoothing=0.1)
    with torch.no_grad():
        for b, w in zip(("sa", "glca", "pwca"), (0.2, -0.4, 0.9)):
            criterion.weights[b].fill_(w)
    total, per_branch = criterion(outputs, targets)
    expected_total = 0.0
    for b, w in zip(("sa", "glca", "pwca"), (0.2, -0.4, 0.9)):
        log_p = outputs[b]["logits"].log_softmax(-1)
        smooth = 0.9 * -log_p[torch.arange(4), targets] + 0.1 * -log_p.mean(-1)
        assert per_branch[b].item() == pytest.approx(smooth.mean().item(), rel=1e-5)
        expected_total += 0.5 * (math.exp(-w) * smooth.mean().item() + w)
    assert total.item() == pytest.approx(expected_total, rel=1e-5)
    with pytest.raises(ConfigError, match="pwca"):
        criterion({"sa": outputs["sa"], "glca": outputs["glca"]}, targets)


def test_batch_hard_triplet_matches_a_loop():
    torch.manual_seed(0)
    feats, ids = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    expected = []
    for a in range(8):
        pos = [torch.dist(feats[a], feats[p]) for p in range(8) if p != a and ids[p] == ids[a]]
        neg = [torch.dist(feats[a], feats[n]) for n in range(8) if ids[n] != ids[a]]
        if pos:
            expected.append(max(0.0, max(pos).item() - min(neg).item() + 0.3))
    assert batch_hard_triplet(feats, ids, 0.3).item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert batch_hard_triplet(feats[:2], torch.tensor([0, 1])).item() == 0.0


def test_soft_margin_triplet_is_the_default_and_matches_its_formula():
    """log(1 + exp(d_ap - d_an)) with the hardest positive and negative (TransReID's NO_MARGIN)."""
    torch.manual_seed(1)
    feats, ids = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    expected = []
    for a in range(8):
        pos = [torch.dist(feats[a], feats[p]).item() for p in range(8) if p != a and ids[p] == ids[a]]
        neg = [torch.dist(feats[a], feats[n]).item() for n in range(8) if ids[n] != ids[a]]
        if pos:
            expected.append(math.log(1 + math.exp(max(pos) - min(neg))))
    soft = sum(expected) / len(expected)
    assert batch_hard_triplet(feats, ids).item() == pytest.approx(soft, rel=1e-5)
    assert batch_hard_triplet(feats, ids, None).item() == pytest.approx(soft, rel=1e-5)
    assert DCALLoss("reid").triplet_margin is None and DCALLoss("reid").label_smoothing == 0.0
    assert batch_hard_triplet(feats, ids, 0.3).item() != pytest.approx(soft, rel=1e-3)


def test_reid_criterion_adds_triplet_on_pre_bn_feature():
    torch.manual_seed(0)
    out = {"feat": torch.randn(4, 8), "bn_feat": torch.randn(4, 8), "logits": torch.randn(4, 3)}
    targets = torch.tensor([0, 0, 1, 1])
    criterion = DCALLoss("reid", branches=("sa",))
    expected = torch.nn.functional.cross_entropy(out["logits"], targets) + batch_hard_triplet(out["feat"], targets)
    total, per_branch = criterion({"sa": out}, targets)
    assert per_branch["sa"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)  # one branch: the plain loss, weight 1


@pytest.mark.parametrize("task", ["fgvc", "reid"])
def test_a_baseline_trains_the_plain_loss_whatever_its_weight_holds(task):
    """TransReID's and DeiT's loss: CE (+ soft-margin triplet for Re-ID) with weight 1, not ½·exp(−w)·L + ½w."""
    torch.manual_seed(0)
    model = dcal.create_model("vit_tiny_patch16_224", 3, task=task, img_size=32, patch_size=8, glca=False,
                              pwca_blocks=0, **TINY).train()
    criterion = DCALLoss.for_model(model)
    assert criterion.branches == ("sa",) and not criterion.weighted and criterion.weight_values() == {}
    with torch.no_grad():
        criterion.weights["sa"].fill_(1.8)
    x, targets = torch.randn(6, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2])
    out = model.forward_branches(x)
    expected = torch.nn.functional.cross_entropy(out["sa"]["logits"], targets)
    if task == "reid":
        feats = out["sa"]["feat"]
        hardest = [(max(torch.dist(feats[a], feats[p]) for p in range(6) if p != a and targets[p] == targets[a])
                    - min(torch.dist(feats[a], feats[n]) for n in range(6) if targets[n] != targets[a])) for a in range(6)]
        expected = expected + sum(math.log1p(math.exp(gap.item())) for gap in hardest) / 6
    total, _ = criterion(out, targets)
    assert total.item() == pytest.approx(expected.detach().item(), rel=1e-5)
    assert not criterion.weights["sa"].requires_grad  # frozen: no optimiser group, no DDP gradient
    assert DCALLoss.for_model(dcal.create_model("vit_tiny_patch16_224", 3, img_size=32, patch_size=8, **TINY)).weighted


@pytest.mark.parametrize("task", ["fgvc", "reid"])
def test_one_step_moves_every_parameter_and_groups_skip_decay_where_due(task):
    torch.manual_seed(0)
    model = dcal.create_model("deit_tiny_distilled_patch16_224", 3, task=task, img_size=(64, 32), **TINY).train()
    criterion = DCALLoss.for_model(model)
    assert criterion.branches == ("sa", "glca", "pwca")
    optimiser = create_optimizer_v2(param_groups(model, criterion, 0.05), opt="adamw", lr=1e-3, weight_decay=0.05)
    decay = {id(p): group["weight_decay"] for group in optimiser.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    for name, p in named.items():
        if not p.requires_grad:
            assert id(p) not in decay, name
            continue
        should_skip = p.ndim == 1 or name.split(".")[-1] in ("pos_embed", "cls_token", "dist_token")
        assert decay[id(p)] == (0.0 if should_skip else 0.05), name
    assert all(decay[id(w)] == 0.0 for w in criterion.weights.values())
    assert not named["sa_head.bn.bias"].requires_grad if task == "reid" else True

    before = {n: p.detach().clone() for n, p in named.items()}
    before.update({f"loss.{b}": w.detach().clone() for b, w in criterion.weights.items()})
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    total, _ = criterion(model(torch.randn(6, 3, 64, 32), derangement(6)), targets)
    total.backward()
    optimiser.step()
    after = dict(named, **{f"loss.{b}": w for b, w in criterion.weights.items()})
    frozen = {n for n, p in named.items() if not p.requires_grad}
    unmoved = [n for n in before if n not in frozen and torch.equal(before[n], after[n].detach())]
    assert not unmoved
    assert frozen == ({"sa_head.bn.bias", "glca_head.bn.bias"} if task == "reid" else set())


@pytest.mark.parametrize("weight_lr, expected_scale", [(None, 1.0), (0.02, 2.5), (0.0, 0.0)])
def test_loss_weights_have_their_own_group_and_learning_rate(weight_lr, expected_scale):
    """loss.weight_lr: the uncertainty weights' group follows the network's schedule, scaled to their rate."""
    model = dcal.create_model("vit_tiny_patch16_224", 3, task="reid", img_size=32, patch_size=8, **TINY)
    criterion = DCALLoss.for_model(model)
    config = load_config(None, ["task=reid", "optim.name=momentum", "optim.lr=0.008", "optim.weight_decay=1e-4",
                                f"loss.weight_lr={'null' if weight_lr is None else weight_lr}",
                                "train.epochs=10", "train.warmup_epochs=2", "train.warmup_lr=8e-5", "train.min_lr=1.6e-5"])
    optimiser = build_optimizer(model, criterion, config)
    (group,) = [g for g in optimiser.param_groups if any(p is criterion.weights["sa"] for p in g["params"])]
    assert {id(p) for p in group["params"]} == {id(w) for w in criterion.weights.values()}
    assert group["weight_decay"] == 0.0 and group["lr_scale"] == pytest.approx(expected_scale)
    network = optimiser.param_groups[0]
    assert all(not any(p is w for w in criterion.weights.values()) for p in network["params"])
    scheduler = build_scheduler(optimiser, config, steps_per_epoch=10)
    for step in (0, 5, 20, 60, 100):
        scheduler.step_update(step)
        assert group["lr"] == pytest.approx(network["lr"] * expected_scale, rel=1e-9)


def test_schedule_warms_up_inside_the_run_and_ends_at_min_lr():
    """TransReID's and DeiT's cosine: warmup is the first part of the epochs, the floor is reached at the last step."""
    model = dcal.create_model("vit_tiny_patch16_224", 3, img_size=32, patch_size=8, **TINY)
    config = load_config(None, ["optim.lr=0.008", "train.epochs=120", "train.warmup_epochs=5", "train.warmup_lr=8e-5",
                                "train.min_lr=1.6e-5"])
    optimiser = build_optimizer(model, DCALLoss.for_model(model), config)
    scheduler = build_scheduler(optimiser, config, steps_per_epoch=10)
    lr = {}
    for step in (0, 25, 600, 1200):
        scheduler.step_update(step)
        lr[step] = optimiser.param_groups[0]["lr"]
    total = 1200
    assert lr[0] == pytest.approx(8e-5)
    assert lr[25] == pytest.approx(8e-5 + 25 * (0.008 - 8e-5) / 50)  # linear warmup over 5 epochs
    assert lr[600] == pytest.approx(1.6e-5 + 0.5 * (0.008 - 1.6e-5) * (1 + math.cos(math.pi * 600 / total)))
    assert lr[1200] == pytest.approx(1.6e-5)
