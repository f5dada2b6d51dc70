"""Top-k accuracy against a plain loop, and the FGVC evaluator's combined score softmax(SA) + softmax(GLCA)."""

import torch

from dcal.evaluation.classification import topk_accuracy


def test_topk_accuracy_matches_a_plain_count():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 7, generator=generator)
    targets = torch.randint(0, 7, (50,), generator=generator)
    accuracy = topk_accuracy(scores, targets, ks=(1, 3, 5, 10))
    for k in (1, 3, 5):
        hits = 0
        for row, target in zip(scores.tolist(), targets.tolist()):
            ranked = sorted(range(7), key=lambda c: -row[c])
            hits += target in ranked[:k]
        assert accuracy[k] == 100.0 * hits / 50
    assert accuracy[10] == 100.0  # k beyond the number of classes counts every image


def test_fgvc_evaluator_combines_the_branches():
    from dcal.config import load_config
    from dcal.engine.evaluator import evaluate
    from tiny_datasets import TensorItems

    class TwoBranches(torch.nn.Module):
        def forward_branches(self, x):
            return {"sa": {"logits": x[:, :3]}, "glca": {"logits": x[:, 3:]}}

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(23, 6, generator=generator) * 3
    y = torch.randint(0, 3, (23,), generator=generator)
    metrics = evaluate(TwoBranches(), {"test": TensorItems(x, y)}, load_config(None, ["eval.batch_size=4"]))
    combined = x[:, :3].softmax(1) + x[:, 3:].softmax(1)
    assert metrics["num_images"] == 23
    assert metrics["top1"] == 100.0 * (combined.argmax(1) == y).double().mean().item()
    assert metrics["top1_sa"] == 100.0 * (x[:, :3].argmax(1) == y).double().mean().item()
    assert metrics["top1_glca"] == 100.0 * (x[:, 3:].argmax(1) == y).double().mean().item()
    assert "pointing_game" not in metrics
