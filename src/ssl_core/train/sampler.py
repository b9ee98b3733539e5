"""Epoch-shuffled, rank-sliced sampling whose items carry their own augmentation seed.

Each item is ``(seed, index)``; the dataset seeds torch's generator with it before drawing
the views. An image's views then depend only on (run seed, epoch, index): the same with any
number of loader workers or processes, and after a resume.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

SEED_MODULUS = 2**63 - 1


class EpochSampler(Sampler[tuple[int, int]]):
    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch = 0
        self.skip = 0
        self.per_rank = size // world_size  # the tail that does not divide is dropped

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """``skip``: items of this rank's share already trained on (a resume mid-epoch)."""
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.per_rank - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[: self.per_rank * self.world_size]
        base = (self.seed * 1_000_003 + self.epoch) * (self.size + 1)
        for index in order[self.rank :: self.world_size][self.skip :].tolist():
            yield (base + index) % SEED_MODULUS, index
