"""Cyclical and one-cycle learning rates (Smith 2017, arXiv:1506.01186; Smith & Topin 2019, arXiv:1708.07120).

Problem: a monotonically decaying LR needs its peak and floor tuned by hand, and a low LR
late in training lets the weights settle into sharp minima and saddle plateaus.
Idea: move the LR back and forth between a floor and a peak (triangular cycles), or do one
long cycle up to a high peak and down far below the start, which both explores and anneals.
"""

from __future__ import annotations

from typing import Literal

import torch

from deepstrata.registry import register_scheduler


@register_scheduler("cyclic")
def cyclic(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    *,
    base_lr_ratio: float = 0.1,
    step_size_up: int = 200,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
) -> torch.optim.lr_scheduler.CyclicLR:
    """Triangular cycles between base_lr_ratio x LR and the optimizer's LR; half a cycle is step_size_up steps."""
    peaks = [g["lr"] for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.CyclicLR(
        optimizer,
        base_lr=[p * base_lr_ratio for p in peaks],
        max_lr=peaks,
        step_size_up=step_size_up,
        mode=mode,
        gamma=gamma,
        cycle_momentum=False,
    )


@register_scheduler("one_cycle")
def one_cycle(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    cycle_momentum: bool = False,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """One cycle over the whole run: LR/div_factor up to the optimizer's LR, then down to LR/(div_factor*final_div_factor)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in optimizer.param_groups],
        total_steps=max(2, num_training_steps),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum,
    )
