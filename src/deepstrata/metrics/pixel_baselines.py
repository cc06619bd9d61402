"""Independent-pixel baselines: the likelihood an image model must beat to show it learned structure.

Problem: a generative model's test negative log-likelihood means little on its own; 95 nats
on binarised MNIST is only impressive beside what a model that ignores every dependency
between pixels gets on the same test set.
Idea: fit each pixel on its own on the training images and score the test images with the
same bound the model reports: a Bernoulli per pixel for binary images (nats per image), and
for images with `levels` grey levels either a Gaussian per pixel on the dequantised values
(the trivial baseline of a dequantised flow) or a histogram per pixel over the levels, which
is the best any independent-pixel model can do on the discrete values (bits per dimension).
"""

from __future__ import annotations

import math

import torch


def _flat_pair(train: torch.Tensor, test: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    train, test = train.flatten(1).double(), test.flatten(1).double()
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"{who}: train and test images must have the same number of pixels, got {train.shape[1]} and {test.shape[1]}; pass both splits of one dataset")
    return train, test


def _levels_of(x: torch.Tensor, levels: int, who: str) -> torch.Tensor:
    """Images with values k / (levels - 1) -> the integers k."""
    if levels < 2:
        raise ValueError(f"{who}: levels must be at least 2 (17 for scikit-learn digits, 256 for MNIST), got {levels}")
    return (x * (levels - 1)).round().clamp(0, levels - 1)


def bernoulli_nll(train: torch.Tensor, test: torch.Tensor, *, eps: float = 1e-4) -> float:
    """Mean test NLL in nats per image of a Bernoulli per pixel; its probability is the pixel's train mean, clamped to [eps, 1 - eps]."""
    train, test = _flat_pair(train, test, "bernoulli_nll")
    p = train.mean(0).clamp(eps, 1 - eps)
    return float(-(test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean())


def gaussian_bits_per_dim(train: torch.Tensor, test: torch.Tensor, levels: int, *, generator: torch.Generator | None = None) -> float:
    """Test bits/dim of a normal density per pixel on dequantised values u = (k + noise) / levels.

    Scored with a dequantised flow's bound, -log p(u) + log(levels) per pixel; the noise is
    drawn for the training images first, then for the test images, from `generator`.
    """
    train, test = _flat_pair(train, test, "gaussian_bits_per_dim")
    k_train, k_test = _levels_of(train, levels, "gaussian_bits_per_dim"), _levels_of(test, levels, "gaussian_bits_per_dim")
    u_train = (k_train + torch.rand(k_train.shape, generator=generator).double()) / levels
    u_test = (k_test + torch.rand(k_test.shape, generator=generator).double()) / levels
    normal = torch.distributions.Normal(u_train.mean(0), u_train.std(0))
    nats = -normal.log_prob(u_test).sum(1).mean() + train.shape[1] * math.log(levels)
    return float(nats / (train.shape[1] * math.log(2)))


def histogram_bits_per_dim(train: torch.Tensor, test: torch.Tensor, levels: int) -> float:
    """Test bits/dim of a Laplace-smoothed histogram over the `levels` grey levels of each pixel."""
    train, test = _flat_pair(train, test, "histogram_bits_per_dim")
    k_train, k_test = _levels_of(train, levels, "histogram_bits_per_dim").long(), _levels_of(test, levels, "histogram_bits_per_dim").long()
    counts = torch.ones(train.shape[1], levels, dtype=torch.float64)  # Laplace smoothing: one pseudo-count per level
    counts.scatter_add_(1, k_train.T, torch.ones_like(k_train.T, dtype=torch.float64))
    logp = (counts / counts.sum(1, keepdim=True)).log()
    return float(-logp.gather(1, k_test.T).sum(0).mean() / (train.shape[1] * math.log(2)))
