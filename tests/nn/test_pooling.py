"""Pooling: the downsampling table, and the mean over the real steps of a zero-padded sequence."""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.nn.pooling import POOLS, masked_mean, nonzero_steps


def test_pools_halve_the_map_by_maximum_or_mean() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert POOLS["max"] is nn.MaxPool2d and POOLS["avg"] is nn.AvgPool2d
    torch.testing.assert_close(POOLS["max"](2)(x), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    torch.testing.assert_close(POOLS["avg"](2)(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_masked_mean_averages_only_the_real_steps_found_as_non_zero() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4)
    x[0, 2:] = 0  # two real steps
    x[2] = 0  # no real step at all
    real = nonzero_steps(x)
    assert real.tolist() == [[True, True, False, False, False], [True] * 5, [False] * 5]
    pooled = masked_mean(x, real)
    torch.testing.assert_close(pooled[0], x[0, :2].mean(0))
    torch.testing.assert_close(pooled[1], x[1].mean(0))
    assert torch.equal(pooled[2], torch.zeros(4))
