"""Shared test settings: small thread count and fixed seeds so runs are repeatable on 2 cores."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
