"""Sampler properties: P×K structure, determinism in (seed, epoch), DDP disjointness and agreement,
mid-epoch resume, evaluation covering every index exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from dcal.data.samplers import IdentitySampler, ShardedEvalSampler, ShuffleSampler
from dcal.errors import ConfigError

# 30 identities with 1..9 images each (some fewer than K = 4)
PIDS = [pid for pid in range(30) for _ in range(1 + pid % 9)]


def batches_of(sampler, batch_size):
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % batch_size == 0
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def test_identity_sampler_pk_structure():
    sampler = IdentitySampler(PIDS, batch_size=16, num_instances=4, seed=3)
    batches = batches_of(sampler, 16)
    assert len(batches) >= 5
    for batch in batches:
        counts = Counter(PIDS[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {4}  # P = 4 identities × K = 4 images
    # an identity with a single image appears with that image repeated (sampling with replacement)
    single = [i for i, pid in enumerate(PIDS) if pid == 0]
    assert all(batch[j:j + 4] == single * 4 for batch in batches for j in range(0, 16, 4) if PIDS[batch[j]] == 0)
    # identities with at least K images use distinct images within an epoch
    used = Counter(i for batch in batches for i in batch if 1 + PIDS[i] % 9 >= 4)
    assert max(used.values()) == 1


def test_identity_sampler_deterministic_in_seed_and_epoch():
    a = IdentitySampler(PIDS, 16, 4, seed=1)
    b = IdentitySampler(PIDS, 16, 4, seed=1)
    a.set_epoch(5), b.set_epoch(5)
    assert list(a) == list(b)
    b.set_epoch(6)
    assert list(a) != list(b)
    c = IdentitySampler(PIDS, 16, 4, seed=2)
    c.set_epoch(5)
    assert list(a) != list(c)


def test_identity_sampler_ddp_disjoint_and_agreeing():
    world = 3
    single = IdentitySampler(PIDS, 8, 4, seed=7)
    single.set_epoch(2)
    global_batches = batches_of(single, 8)
    ranks = [IdentitySampler(PIDS, 8, 4, seed=7, rank=r, world_size=world) for r in range(world)]
    for sampler in ranks:
        sampler.set_epoch(2)
    per_rank = [batches_of(s, 8) for s in ranks]
    assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
    # rank r's batches are global batches r, r + world, ...: the ranks agree on one order and share no batch
    for r, batches in enumerate(per_rank):
        assert batches == global_batches[r::world][:len(batches)]
    positions = [tuple(b) for batches in per_rank for b in batches]
    assert len(positions) == len(set(positions)) == world * len(per_rank[0])


def test_shuffle_sampler_ddp_partition_and_determinism():
    n, world = 103, 4
    ranks = [ShuffleSampler(n, seed=5, rank=r, world_size=world) for r in range(world)]
    for s in ranks:
        s.set_epoch(1)
    shares = [list(s) for s in ranks]
    assert all(len(share) == n // world for share in shares)
    union = [i for share in shares for i in share]
    assert len(set(union)) == len(union) == world * (n // world)
    again = ShuffleSampler(n, seed=5, rank=2, world_size=world)
    again.set_epoch(1)
    assert list(again) == shares[2]
    again.set_epoch(2)
    assert list(again) != shares[2]
    padded = [list(ShuffleSampler(n, seed=5, rank=r, world_size=world, drop_last=False)) for r in range(world)]
    assert set(i for share in padded for i in share) == set(range(n)) and len({len(p) for p in padded}) == 1


@pytest.mark.parametrize("make", [lambda: ShuffleSampler(50, seed=1, rank=1, world_size=2),
                                  lambda: IdentitySampler(PIDS, 8, 4, seed=1, rank=1, world_size=2)])
def test_resume_mid_epoch_skips_consumed_indices(make):
    full, resumed = make(), make()
    full.set_epoch(4)
    resumed.set_epoch(4, skip=16)
    assert list(resumed) == list(full)[16:] and len(resumed) == len(full) - 16


@pytest.mark.parametrize("n,world", [(10, 3), (2, 4), (0, 2), (97, 8)])
def test_sharded_eval_sampler_exactly_once_in_order(n, world):
    shards = [list(ShardedEvalSampler(n, r, world)) for r in range(world)]
    assert [i for shard in shards for i in shard] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_sampler_argument_errors():
    with pytest.raises(ConfigError, match="not a multiple of num_instances 4"):
        IdentitySampler(PIDS, 10, 4)
    with pytest.raises(ConfigError, match="2 identities cannot fill batches of 4"):
        IdentitySampler([0, 0, 1], 16, 4)
    with pytest.raises(ConfigError, match="rank 2 is not in"):
        ShardedEvalSampler(5, rank=2, world_size=2)
