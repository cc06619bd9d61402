"""Unstructured magnitude pruning: the smallest weights set to zero, layer by layer or globally.

Problem: a trained network has far more weights than it needs; Han et al. 2015 ("Learning both
Weights and Connections for Efficient Neural Networks") removed 92% of LeNet-5's with no loss
in accuracy after retraining.
Idea: a weight's magnitude is a cheap estimate of its importance. Rank the weights of every
weight matrix and convolution kernel (parameters of 2 or more dimensions; biases and
normalisation scales are left alone) and zero the smallest:
- `global`: one threshold over all of them, so layers with many small weights lose more;
- `layer`: the same fraction in every layer.

Fine-tuning afterwards with the zeros held (the `keep_sparsity` callback) recovers the
accuracy the cut cost.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.errors import UserError

Scope = Literal["global", "layer"]


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters pruning acts on: every tensor of 2 or more dimensions (Linear and conv weights, embeddings)."""
    return {name: p for name, p in model.named_parameters() if p.dim() > 1}


def magnitude_masks(model: nn.Module, sparsity: float, *, scope: Scope = "global") -> dict[str, torch.Tensor]:
    """name -> bool mask (True: kept) zeroing the `sparsity` fraction of smallest-magnitude weights."""
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"prune: sparsity must be in [0, 1), got {sparsity}")
    params = prunable(model)
    if not params:
        raise UserError("prune: the model has no weight matrices or kernels to prune")
    if scope == "layer":
        return {name: _keep_largest(p.detach().abs().flatten(), sparsity).view_as(p) for name, p in params.items()}
    scores = torch.cat([p.detach().abs().flatten() for p in params.values()])
    keep = _keep_largest(scores, sparsity)
    masks, start = {}, 0
    for name, p in params.items():
        masks[name] = keep[start : start + p.numel()].view_as(p)
        start += p.numel()
    return masks


def _keep_largest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True for all but the `round(sparsity * n)` smallest scores (ties broken by position)."""
    n_prune = int(round(sparsity * scores.numel()))
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_prune:
        keep[torch.argsort(scores, stable=True)[:n_prune]] = False
    return keep


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        params[name].mul_(keep.to(params[name].device))


def sparsity_of(model: nn.Module) -> float:
    """The fraction of exact zeros among the prunable weights."""
    params = prunable(model).values()
    total = sum(p.numel() for p in params)
    return sum(int((p == 0).sum()) for p in params) / total if total else 0.0
