"""A resumable, shardable sampler: the data order of an epoch is a function of (seed, epoch).

Problem: resuming a killed run mid-epoch must continue with exactly the batches it had not
seen, and data-parallel ranks must split each epoch without overlap; a sampler driven by a
stateful RNG can do neither after a restart.
Idea: torch's `DistributedSampler` already draws each epoch's permutation from seed + epoch
and gives rank r every world-th index; add a start offset so an epoch can begin mid-way. With
one rank the order is the same permutation, so a 2-rank run with batch b/2 per rank sees the
same global batches as one process with batch b.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """`DistributedSampler` that can skip the first `start` indices of its (per-rank) epoch."""

    def __init__(self, dataset: Sized, *, seed: int, shuffle: bool, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)  # type: ignore[arg-type]
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Begin the next iteration at index `start` of epoch `epoch`'s order (this rank's share)."""
        self.set_epoch(epoch)
        self.start = start

    def order(self) -> torch.Tensor:
        """This rank's indices of the epoch from `start` on, as one tensor: `DistributedSampler`'s
        order (permutation from seed + epoch, padded by wrapping around, every world-th index),
        built without a Python list for the tensor loader (data/tensor_loader.py)."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            indices = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            indices = torch.arange(n)
        if self.total_size > n:  # drop_last=False: repeat from the start until every rank has as many
            indices = torch.cat([indices] * -(-self.total_size // n))
        indices = indices[: self.total_size][self.rank : self.total_size : self.num_replicas]
        return indices[self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


def data_parallel_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
