"""Independent-pixel baselines: each equals its textbook definition on small inputs."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.metrics.pixel_baselines import bernoulli_nll, gaussian_bits_per_dim, histogram_bits_per_dim


def test_bernoulli_nll_equals_torch_distributions() -> None:
    torch.manual_seed(0)
    train, test = torch.bernoulli(torch.full((50, 1, 3, 3), 0.3)), torch.bernoulli(torch.full((20, 1, 3, 3), 0.3))
    p = train.flatten(1).double().mean(0).clamp(1e-4, 1 - 1e-4)
    expected = -torch.distributions.Bernoulli(probs=p).log_prob(test.flatten(1).double()).sum(1).mean()
    assert bernoulli_nll(train, test) == pytest.approx(float(expected), rel=1e-12)


def test_histogram_counts_each_level_with_one_pseudo_count() -> None:
    train = torch.tensor([[0.0], [0.0], [1.0]])  # one pixel, two levels: counts 2 and 1, smoothed 3 and 2
    assert histogram_bits_per_dim(train, torch.tensor([[0.0]]), 2) == pytest.approx(-math.log2(3 / 5))
    assert histogram_bits_per_dim(train, torch.tensor([[1.0]]), 2) == pytest.approx(-math.log2(2 / 5))


def test_gaussian_is_a_normal_fit_on_dequantised_pixels_scored_with_the_flow_bound() -> None:
    torch.manual_seed(0)
    levels = 5
    train, test = torch.randint(0, levels, (40, 6)) / (levels - 1), torch.randint(0, levels, (10, 6)) / (levels - 1)
    gen = torch.Generator().manual_seed(3)
    u_train = (train * (levels - 1) + torch.rand(train.shape, generator=gen)).double() / levels
    u_test = (test * (levels - 1) + torch.rand(test.shape, generator=gen)).double() / levels
    nats = -torch.distributions.Normal(u_train.mean(0), u_train.std(0)).log_prob(u_test).sum(1).mean() + 6 * math.log(levels)
    got = gaussian_bits_per_dim(train, test, levels, generator=torch.Generator().manual_seed(3))
    assert got == pytest.approx(float(nats) / (6 * math.log(2)), rel=1e-6)


def test_mismatched_splits_and_bad_levels_say_what_to_pass() -> None:
    with pytest.raises(ValueError, match="same number of pixels, got 4 and 3; pass both splits"):
        bernoulli_nll(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="levels must be at least 2"):
        histogram_bits_per_dim(torch.zeros(2, 4), torch.zeros(2, 4), 1)
