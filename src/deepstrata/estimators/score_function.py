"""The score-function (REINFORCE) gradient estimator, with and without a baseline.

Problem: the gradient of an expectation E_{z ~ p_theta}[f(z)] cannot be taken by backpropagating
through a sample z, because sampling is not differentiable (z may be discrete and f a black box).
Idea: grad E[f] = E[f(z) grad log p_theta(z)], estimated by a sample mean; subtracting a baseline b
that does not depend on z keeps it unbiased (E[grad log p] = 0) and can cut its variance a lot
(Williams 1992, "Simple statistical gradient-following algorithms"; Greensmith et al. 2004).
"""

from __future__ import annotations

import torch


def reinforce_surrogate(log_prob: torch.Tensor, values: torch.Tensor, *, baseline: torch.Tensor | float | None = None) -> torch.Tensor:
    """A scalar whose gradient is the REINFORCE estimate of grad E[f]: mean((f - b) * grad log p).

    log_prob: (S, ...) log p_theta(z_s) of S samples, differentiable in theta.
    values: (S, ...) f(z_s); treated as constants (f may be a black box).
    baseline: None, a constant, or a tensor broadcastable to values that must not depend on z_s
        itself (use `leave_one_out_baseline` to build one from the other samples).
    Minimising `-reinforce_surrogate(...)` maximises E[f].
    """
    if log_prob.shape != values.shape:
        raise ValueError(f"reinforce_surrogate: log_prob shape {tuple(log_prob.shape)} differs from values shape {tuple(values.shape)}")
    advantage = values.detach()
    if baseline is not None:
        advantage = advantage - (baseline.detach() if isinstance(baseline, torch.Tensor) else baseline)
    return (advantage * log_prob).mean(dim=0).sum()


def leave_one_out_baseline(values: torch.Tensor) -> torch.Tensor:
    """b_s = mean of the other S - 1 samples' values: independent of z_s, so the estimate stays unbiased.

    (Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for free".)
    values: (S, ...) -> (S, ...).
    """
    s = values.shape[0]
    if s < 2:
        raise ValueError(f"leave_one_out_baseline needs at least 2 samples along dim 0, got {s}")
    return (values.sum(dim=0, keepdim=True) - values) / (s - 1)
