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


@register_optimizer("rmsprop")
def rmsprop(
    params: Params, *, lr: float = 1e-3, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0
) -> torch.optim.RMSprop:
    """RMSprop: divide the step by a running RMS of recent gradients (Hinton, Coursera lecture 6e)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered, weight_decay=weight_decay)


@register_optimizer("adagrad")
def adagrad(params: Params, *, lr: float = 1e-2, lr_decay: float = 0.0, eps: float = 1e-10, weight_decay: float = 0.0) -> torch.optim.Adagrad:
    """Adagrad: per-parameter steps shrink with the sum of past squared gradients (Duchi et al. 2011)."""
    return torch.optim.Adagrad(params, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay)


@register_optimizer("radam")
def radam(
    params: Params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False
) -> torch.optim.RAdam:
    """RAdam: Adam with the variance of the adaptive LR rectified in early steps (Liu et al. 2020)."""
    return torch.optim.RAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay)
