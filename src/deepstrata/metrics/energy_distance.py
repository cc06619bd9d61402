"""Energy distance between two samples: a two-sample test statistic for generated data.

Problem: a low-dimensional model's samples (two moons) need one number saying how far they
are from held-out data, with no density required and no binning.
Idea: D² = 2 E|X - Y| - E|X - X'| - E|Y - Y'| is zero exactly when the two distributions are
equal and is estimated from pairwise Euclidean distances. (Székely & Rizzo 2013.)
"""

from __future__ import annotations

import torch


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared energy distance between samples a (N, D) and b (M, D) (V-statistic)."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"energy_distance expected (N, D) and (M, D) samples, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double(), b.double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())
