"""Gradient-descent optimizers by name (torch's own implementations).

Problem: one global step size suits no parameter well; noisy gradients zig-zag in
ill-conditioned valleys.
Idea: momentum averages gradients over steps to damp the zig-zag; adaptive methods (Adam and
kin) scale each parameter's step by a running estimate of its gradient's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from deepstrata.registry import register_optimizer

Params = Iterable[Any]


@register_optimizer("sgd")
def sgd(params: Params, *, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> torch.optim.SGD:
    """Stochastic gradient descent, with optional (Nesterov) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


@register_optimizer("adam")
def adam(params: Params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam: per-parameter steps from running first and second moments (Kingma & Ba 2015)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


@register_optimizer("adamw")
def adamw(params: Params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW: Adam with weight decay decoupled from the gradient (Loshchilov & Hutter 2019)."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
