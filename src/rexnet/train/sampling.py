"""Deterministic sampling and augmentation: the same images, crops and order for a given
``(seed, epoch)`` however many processes or workers run, and resumable mid-epoch.

* :class:`EpochSampler` shuffles with a generator seeded by ``(seed, epoch)``, drops the last
  partial global batch, and gives process ``r`` of ``W`` the ``r``-th contiguous slice of every
  global batch (a ``DistributedSampler`` whose shards line up with gradient accumulation).
* :class:`SeededView` seeds torch's RNG from ``(seed, epoch, index)`` around each sample's
  transform (inside ``fork_rng``), so augmentation does not depend on worker count or order, and
  the process's own RNG (dropout, drop-path) is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from .._seed import mix_seed
from ..errors import ConfigError

__all__ = ["EpochSampler", "SeededView", "mix_seed"]


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` pairs of this process's share of one epoch.

    Args:
        n: Dataset length.
        global_batch: Samples per optimiser step over all processes.
        seed: Run seed.
        rank / world_size: This process and how many there are.
        shuffle: Shuffle (train) or keep order.
    """

    def __init__(
        self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(f"global batch {global_batch} must be divisible by world size {world_size}")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.skip = 0, 0

    @property
    def steps(self) -> int:
        """Full global batches per epoch."""
        return self.n // self.global_batch

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and skip this process's first ``skip`` samples (mid-epoch resume)."""
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.steps * self.global_batch // self.world_size - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 1))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        local = self.global_batch // self.world_size
        mine: list[int] = []
        for b in range(self.steps):
            start = b * self.global_batch + self.rank * local
            mine += order[start : start + local]
        for i in mine[self.skip :]:
            yield self.epoch, i


class SeededView(Dataset):
    """Wraps a dataset indexed by ``(epoch, index)``: each sample's randomness is seeded by
    ``(seed, epoch, index)``."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, epoch, index, 2))
            return self.dataset[index]
