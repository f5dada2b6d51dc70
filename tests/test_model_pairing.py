"""PWCA's distractor pairs: permutations without fixed points."""

import pytest
import torch

from dcal.errors import ConfigError
from dcal.model.pairing import derangement


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
