"""DP-SGD's step written out, for the tests to compare Opacus and our options against.

Problem: the clipping tests of plain DP-SGD and of augmentation multiplicity both need the
noise-free clipped step by its definition and the gradient Opacus' optimizer actually produces.
Idea: one copy of each: `clipped_sum` (sum_i g_i * min(1, C / ||g_i||) / expected batch) and
`dp_gradient` (one backward and DPOptimizer.pre_step, the gradients it hands the wrapped optimizer).
"""

from __future__ import annotations

import torch
from torch import nn


def clipped_sum(per_example: dict[str, torch.Tensor], clip: float, expected: int) -> dict[str, torch.Tensor]:
    """sum_i g_i * min(1, C / ||g_i||) / expected batch, ||g_i|| over every parameter; Opacus' 1e-6 keeps a zero gradient finite."""
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    return {k: torch.einsum("i,i...->...", factor, g) / expected for k, g in per_example.items()}


def dp_gradient(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """The gradient DPOptimizer hands the wrapped optimizer for one batch (clipped, summed, noised, averaged)."""
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.pre_step()
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}
