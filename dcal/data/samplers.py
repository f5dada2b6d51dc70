"""Samplers for training (P×K identities for Re-ID, shuffling for FGVC) and sharded evaluation.

All training samplers are pure functions of ``(seed, epoch, rank, world_size)``: every rank builds
the same global order for the epoch from ``numpy.random.default_rng([seed, epoch])`` and takes its
own share, so ranks agree on the order without communicating and their shares are disjoint.  Each
``__iter__`` yields indices for a DataLoader whose ``batch_size`` is the per-rank batch size.

Resuming mid-epoch: ``set_epoch(epoch, skip=n)`` drops the first ``n`` indices of this rank's order
for that epoch (``n`` = batches already consumed × per-rank batch size); ``len()`` shrinks to match.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from torch.utils.data import Sampler

from dcal.errors import ConfigError


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")


class _EpochSampler(Sampler):
    """Shared epoch / skip bookkeeping: subclasses define ``_rank_order(rng) -> list[int]``."""

    def __init__(self, seed: int, rank: int, world_size: int):
        _check_rank(rank, world_size)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.skip = 0, 0
        self._cached = (None, [])

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use ``epoch``'s order from the next ``__iter__``, leaving out its first ``skip`` indices."""
        self.epoch, self.skip = epoch, skip

    def rank_order(self) -> list[int]:
        """This rank's full index order for the current epoch (before ``skip``); computed once per epoch."""
        if self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._rank_order(np.random.default_rng([self.seed, self.epoch])))
        return self._cached[1]

    def __iter__(self):
        return iter(self.rank_order()[self.skip:])

    def __len__(self) -> int:
        return max(self._rank_length() - self.skip, 0)


class ShuffleSampler(_EpochSampler):
    """A fresh permutation of ``range(n)`` per epoch, split into ``world_size`` interleaved shares.

    With ``drop_last=True`` the permutation is cut to a multiple of ``world_size`` (each rank gets
    ``n // world_size`` indices); with ``drop_last=False`` it is padded by repeating its start, as
    ``DistributedSampler``.  Shares are disjoint when ``drop_last=True``.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True):
        super().__init__(seed, rank, world_size)
        self.n, self.drop_last = n, drop_last

    def _rank_length(self) -> int:
        return self.n // self.world_size if self.drop_last else -(-self.n // self.world_size)

    def _rank_order(self, rng) -> list[int]:
        order = rng.permutation(self.n).tolist()
        total = self._rank_length() * self.world_size
        order = order[:total] if self.drop_last else (order * (total // max(self.n, 1) + 1))[:total]
        return order[self.rank::self.world_size]


class IdentitySampler(_EpochSampler):
    """P×K batches: ``batch_size // num_instances`` identities with ``num_instances`` images each.

    As torchreid's ``RandomIdentitySampler``: each identity's images are shuffled (an identity with
    fewer than K images is drawn with replacement up to K) and cut into groups of K; batches take
    one group from each of P identities drawn at random among those with groups left, until fewer
    than P remain.  The epoch's batches are dealt to ranks in turn (batch ``b`` to rank
    ``b % world_size``) and cut to a common count, so every rank yields the same number of whole
    P×K batches and no batch is shared.  ``batch_size`` is the per-rank batch size.
    """

    def __init__(self, pids, batch_size: int, num_instances: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        if num_instances < 1 or batch_size % num_instances:
            raise ConfigError(f"batch size {batch_size} is not a multiple of num_instances {num_instances}")
        self.batch_size, self.num_instances = batch_size, num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.index_of = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_of[int(pid)].append(index)
        self.pids = sorted(self.index_of)
        if len(self.pids) < self.num_pids_per_batch:
            raise ConfigError(f"{len(self.pids)} identities cannot fill batches of {self.num_pids_per_batch} "
                              f"identities (batch size {batch_size} / num_instances {num_instances})")

    def batches(self, rng) -> list[list[int]]:
        """The epoch's global list of P×K batches (the same on every rank)."""
        groups = {}
        for pid in self.pids:
            indices = self.index_of[pid]
            if len(indices) < self.num_instances:
                indices = rng.choice(indices, size=self.num_instances, replace=True).tolist()
            else:
                indices = rng.permutation(indices).tolist()
            k = self.num_instances
            groups[pid] = [indices[i:i + k] for i in range(0, len(indices) - k + 1, k)]
        available = [pid for pid in self.pids if groups[pid]]
        batches = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            batch = []
            for pid in (available[i] for i in sorted(chosen)):
                batch += groups[pid].pop()
            batches.append(batch)
            available = [pid for pid in available if groups[pid]]
        return batches

    def _rank_order(self, rng) -> list[int]:
        batches = self.batches(rng)
        per_rank = len(batches) // self.world_size
        mine = batches[self.rank::self.world_size][:per_rank]
        return [index for batch in mine for index in batch]

    def _rank_length(self) -> int:
        return len(self.rank_order())


class ShardedEvalSampler(Sampler):
    """Contiguous shards of ``range(n)``: rank r gets ``[start_r, end_r)``, each index exactly once.

    No padding, so shard lengths differ by at most one; concatenating the ranks' outputs in rank
    order restores dataset order.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        _check_rank(rank, world_size)
        base, extra = divmod(n, world_size)
        self.start = rank * base + min(rank, extra)
        self.end = self.start + base + (1 if rank < extra else 0)

    def __iter__(self):
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start
