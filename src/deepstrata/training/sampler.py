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

import itertools
from collections.abc import Iterator, Sized

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

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)


def data_parallel_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
