"""A feature file says what its features are: the description stored in its metadata follows the
model's settings (branches, ``neck_feat``), and the features are what it says."""

import pytest
import torch
import torch.nn.functional as F

import dcal
from dcal.export.features import batch_features, feature_description

TINY = dict(img_size=32, embed_dim=32, depth=1, num_heads=2)


@pytest.mark.parametrize("neck_feat, glca", [("before", True), ("after", True), ("after", False)])
def test_reid_description_names_the_side_of_the_bnnecks_that_is_extracted(neck_feat, glca):
    torch.manual_seed(0)
    model = dcal.create_model("vit_base_patch16_224", 3, task="reid", neck_feat=neck_feat, glca=glca, **TINY).eval()
    for head in (model.sa_head, model.glca_head):
        if head is not None:  # running statistics far from (0, 1), so before and after differ
            head.bn.running_mean.normal_()
            head.bn.running_var.uniform_(0.5, 4)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        features, scores = batch_features(model, x)
        branches = model.forward_branches(x)
    key = "feat" if neck_feat == "before" else "bn_feat"
    other = "bn_feat" if key == "feat" else "feat"
    present = ["sa", "glca"] if glca else ["sa"]
    expected = F.normalize(torch.cat([branches[b][key] for b in present], dim=1), dim=1)
    wrong_side = F.normalize(torch.cat([branches[b][other] for b in present], dim=1), dim=1)
    assert scores is None
    assert torch.allclose(features, expected, atol=1e-6) and not torch.allclose(features, wrong_side, atol=1e-3)
    description = feature_description(model)
    assert f"features {neck_feat} the BNNecks" in description
    assert description.startswith("concat(SA, GLCA) " if glca else "SA ")


def test_fgvc_description_names_the_features_the_classifiers_read():
    model = dcal.create_model("vit_base_patch16_224", 3, task="fgvc", **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features, _ = batch_features(model, x)
        branches = model.forward_branches(x)
    assert torch.equal(features, torch.cat([branches["sa"]["feat"], branches["glca"]["feat"]], dim=1))
    assert feature_description(model) == "concat(SA, GLCA) features the classifiers read (after the final norms)"
