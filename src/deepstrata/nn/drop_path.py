"""Stochastic depth (DropPath): drop whole residual branches at random while training.

Problem: very deep residual networks overfit and train slowly, and the usual per-unit dropout
fights with batch normalisation inside the branch.
Idea: for each sample, skip the residual branch with probability p (the block becomes the
identity) and scale kept branches by 1/(1-p), so the expected output is unchanged and the
network is, in effect, an ensemble of shallower ones; at evaluation nothing is dropped.
(Huang et al. 2016, "Deep Networks with Stochastic Depth".)
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float, *, training: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each sample of x (N, ...) with probability p and scale the survivors by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # (N, 1, 1, ...): one coin per sample
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep, generator=generator)
    return x * mask / keep


class DropPath(nn.Module):
    """Module form of `drop_path`, applied to a residual branch before the addition."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropPath probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
