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

Cutting 90% at once leaves the network too little to recover from. Zhu & Gupta 2017 ("To
prune, or not to prune") prune gradually while training instead: every `dt` steps from step
`t0`, `n` times, the masks are recomputed at the sparsity of a cubic schedule
s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, which cuts fast while many weights are
redundant and slowly near the end (`cubic_sparsity`; the `gradual_pruning` callback). A weight
pruned once stays pruned (`magnitude_masks(..., previous=masks)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from deepstrata.errors import UserError

Scope = Literal["global", "layer"]


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters pruning acts on: every tensor of 2 or more dimensions (Linear and conv weights, embeddings)."""
    return {name: p for name, p in model.named_parameters() if p.dim() > 1}


def magnitude_masks(
    model: nn.Module, sparsity: float, *, scope: Scope = "global", previous: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """name -> bool mask (True: kept) zeroing the `sparsity` fraction of smallest-magnitude weights.

    previous: masks of an earlier pruning step; the weights they pruned rank below every other
    (score -1), so they stay pruned whenever the new sparsity is at least the old one.
    """
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"prune: sparsity must be in [0, 1), got {sparsity}")
    params = prunable(model)
    if not params:
        raise UserError("prune: the model has no weight matrices or kernels to prune")

    def score(name: str, p: torch.Tensor) -> torch.Tensor:
        magnitude = p.detach().abs().flatten()
        if previous is None or name not in previous:
            return magnitude
        return torch.where(previous[name].to(magnitude.device).flatten(), magnitude, torch.full_like(magnitude, -1.0))

    if scope == "layer":
        return {name: _keep_largest(score(name, p), sparsity).view_as(p) for name, p in params.items()}
    scores = torch.cat([score(name, p) for name, p in params.items()])
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


def cubic_sparsity(step: int, *, initial: float, final: float, start_step: int, frequency: int, num_prunes: int) -> float:
    """Zhu & Gupta's schedule: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, held at s_i before t0 and s_f after t0 + n dt.

    step: t; start_step: t0; frequency: dt (steps between two pruning steps); num_prunes: n.
    """
    if frequency < 1 or num_prunes < 1:
        raise UserError(f"gradual pruning: frequency and num_prunes must be >= 1, got {frequency}, {num_prunes}")
    progress = min(max((step - start_step) / (num_prunes * frequency), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def is_pruning_step(step: int, *, start_step: int, frequency: int, num_prunes: int) -> bool:
    """Whether the masks are recomputed at `step`: t0, t0 + dt, ..., t0 + n dt."""
    offset = step - start_step
    return 0 <= offset <= num_prunes * frequency and offset % frequency == 0
