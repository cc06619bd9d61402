"""ResumableSampler: DistributedSampler's order, for every world size and epoch, from any start."""

from __future__ import annotations

import itertools

import pytest
from torch.utils.data import DistributedSampler

from deepstrata.training.sampler import ResumableSampler


@pytest.mark.parametrize("n", [1, 7, 10, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("shuffle", [True, False])
def test_order_is_distributed_samplers_order(n: int, world: int, shuffle: bool) -> None:
    data = range(n)
    for rank, epoch, start in itertools.product(range(world), (0, 4), (0, 1, 3)):
        reference = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=11)  # type: ignore[arg-type]
        reference.set_epoch(epoch)
        sampler = ResumableSampler(data, seed=11, shuffle=shuffle, num_replicas=world, rank=rank)
        sampler.set_position(epoch, start)
        expected = list(reference)[start:]
        assert list(sampler) == expected
        assert sampler.order().tolist() == expected
        assert len(sampler) == len(reference)
