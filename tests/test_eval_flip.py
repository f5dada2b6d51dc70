"""Test-time horizontal flip (eval.flip): FGVC averages the two views' scores per branch, Re-ID adds
the two views' features before the L2 normalisation; either way the result is mirror-invariant."""

import torch

import dcal
from dcal.config import load_config
from dcal.engine.evaluator import evaluate, reid_branch_features
from tiny_datasets import TensorItems


class _Rows(torch.nn.Module):
    """Logits read off the image's last axis: SA the first 3 values, GLCA twice the last 3 (the
    factor keeps a mirrored image's scores from tying exactly with the image's)."""

    def forward_branches(self, x):
        row = x[:, 0, 0]
        return {"sa": {"logits": row[:, :3]}, "glca": {"logits": 2 * row[:, 3:]}}


def _accuracy(scores, y):
    return 100.0 * (scores.argmax(1) == y).double().mean().item()


def test_fgvc_flip_averages_the_scores_of_image_and_mirror():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(41, 1, 1, 6, generator=generator) * 3
    y = torch.randint(0, 3, (41,), generator=generator)
    row, mirror = x[:, 0, 0], x[:, 0, 0].flip(1)
    sa = (row[:, :3].softmax(1) + mirror[:, :3].softmax(1)) / 2
    glca = ((2 * row[:, 3:]).softmax(1) + (2 * mirror[:, 3:]).softmax(1)) / 2
    flipped = evaluate(_Rows(), {"test": TensorItems(x, y)}, load_config(None, ["eval.batch_size=8", "eval.flip=true"]))
    assert flipped["top1_sa"] == _accuracy(sa, y)
    assert flipped["top1_glca"] == _accuracy(glca, y)
    assert flipped["top1"] == _accuracy(sa + glca, y)
    plain = evaluate(_Rows(), {"test": TensorItems(x, y)}, load_config(None, ["eval.batch_size=8"]))
    assert plain["top1_sa"] == _accuracy(row[:, :3], y)
    assert (plain["top1_sa"], plain["top1_glca"]) != (flipped["top1_sa"], flipped["top1_glca"])


def _reid_model():
    model = dcal.create_model("vit_tiny_patch16_224", 5, task="reid", img_size=(32, 16), patch_size=8,
                              embed_dim=32, depth=2, num_heads=2)
    with torch.no_grad():  # BN statistics as a trained model has them
        model.train()
        model.forward_branches(torch.randn(8, 3, 32, 16))
    return model.eval()


@torch.no_grad()
def test_reid_flip_adds_the_features_of_image_and_mirror():
    model = _reid_model()
    x = torch.randn(4, 3, 32, 16)
    def reid_inference(images, flip=False):
        return reid_branch_features(model, images, flip)[""]

    plain = reid_inference(x)
    assert torch.equal(plain, model(x))
    flipped = reid_inference(x, flip=True)
    assert torch.allclose(flipped.norm(dim=1), torch.ones(4), atol=1e-6)
    assert torch.allclose(flipped, reid_inference(x.flip(3), flip=True), atol=1e-5)  # mirror-invariant
    assert not torch.allclose(plain, model(x.flip(3)), atol=1e-3)  # the model itself is not
    # the sum of the un-normalised features, not of the normalised ones
    views = [model.inference(model.forward_branches(v)) for v in (x, x.flip(3))]
    from dcal.model.inference import reid_features

    raw = [reid_features(model.forward_branches(v), model.neck_feat, normalize=False) for v in (x, x.flip(3))]
    assert torch.allclose(flipped, torch.nn.functional.normalize(raw[0] + raw[1], dim=1), atol=1e-6)
    assert not torch.allclose(flipped, torch.nn.functional.normalize(views[0] + views[1], dim=1), atol=1e-4)
