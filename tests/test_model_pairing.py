"""PWCA's distractor pairs: permutations without fixed points, distractors drawn from the batch's natural
distribution (the default), and distractors of another label (the inter-class-only variant)."""

import pytest
import torch

from dcal.errors import ConfigError
from dcal.model.pairing import derangement, distractor_index


@pytest.mark.parametrize("n", [2, 3, 5, 16, 64])
def test_derangement_is_a_permutation_without_fixed_points(n):
    generator = torch.Generator().manual_seed(n)
    for _ in range(50):
        perm = derangement(n, generator)
        assert perm.dtype == torch.long
        assert sorted(perm.tolist()) == list(range(n))
        assert all(perm[i] != i for i in range(n))


def test_derangements_vary_and_follow_the_generator():
    draws = {tuple(derangement(5).tolist()) for _ in range(1000)}
    assert len(draws) == 44  # all derangements of 5 elements appear
    a = derangement(9, torch.Generator().manual_seed(3))
    b = derangement(9, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("n", [0, 1])
def test_a_pair_needs_two_images(n):
    with pytest.raises(ConfigError, match="at least 2 images"):
        derangement(n)


def _same_label_rate(pairing, pids, splits, draws=200):
    """Share of distractors with the image's own identity when P x K batches are split into micro-batches."""
    generator, same, total = torch.Generator().manual_seed(0), 0, 0
    for _ in range(draws):
        for micro in pids.chunk(splits):
            index = pairing(micro, generator)
            same += int((micro[index] == micro).sum())
            total += len(micro)
    return same / total


def test_same_identity_rates_on_a_pk_batch_under_each_rule():
    """16 x 4 P x K: the natural distribution pairs (K-1)/(PK-1) of the images with their own identity,
    3/63 in one batch and 3/15 when DDP splits it into 4 micro-batches of 4 x 4; 'other' never does."""
    pids = torch.arange(16).repeat_interleave(4)
    by_derangement = {s: _same_label_rate(lambda t, g: derangement(len(t), g), pids, s) for s in (1, 4)}
    assert by_derangement[1] == pytest.approx(3 / 63, abs=0.01)
    assert by_derangement[4] == pytest.approx(3 / 15, abs=0.02)
    natural = {s: _same_label_rate(distractor_index, pids, s) for s in (1, 4)}
    assert natural[1] == pytest.approx(3 / 63, abs=0.01)
    assert natural[4] == pytest.approx(3 / 15, abs=0.02)
    other = {s: _same_label_rate(lambda t, g: distractor_index(t, g, rule="other"), pids, s) for s in (1, 4)}
    assert other == {1: 0.0, 4: 0.0}


def test_random_distractors_are_uniform_among_the_other_images_whatever_their_label():
    targets = torch.tensor([0, 0, 1, 1, 2])
    generator = torch.Generator().manual_seed(1)
    counts = torch.zeros(5, 5)
    for _ in range(3000):
        counts[torch.arange(5), distractor_index(targets, generator)] += 1
    assert (counts.diagonal() == 0).all()
    share = counts / counts.sum(1, keepdim=True)
    assert torch.allclose(share, (1 - torch.eye(5)) / 4, atol=0.04)
    with pytest.raises(ConfigError, match="random, other"):
        distractor_index(targets, rule="intra")


def test_other_label_distractors_are_uniform_among_the_other_labels():
    targets = torch.tensor([0, 0, 1, 1, 2])
    generator = torch.Generator().manual_seed(1)
    counts = torch.zeros(5, 5)
    for _ in range(3000):
        index = distractor_index(targets, generator, rule="other")
        counts[torch.arange(5), index] += 1
    allowed = targets[:, None] != targets[None, :]
    assert (counts[~allowed] == 0).all()
    share = counts / counts.sum(1, keepdim=True)
    expected = allowed / allowed.sum(1, keepdim=True)
    assert torch.allclose(share, expected.float(), atol=0.04)
    assert torch.equal(distractor_index(targets, torch.Generator().manual_seed(5), "other"),
                       distractor_index(targets, torch.Generator().manual_seed(5), "other"))


def test_one_label_falls_back_to_any_other_image():
    index = distractor_index(torch.zeros(6, dtype=torch.long), torch.Generator().manual_seed(0), rule="other")
    assert (index != torch.arange(6)).all()
    with pytest.raises(ConfigError, match="at least 2 images"):
        distractor_index(torch.tensor([3]))
