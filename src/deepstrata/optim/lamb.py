"""LAMB: layer-wise adaptive moments for large-batch training (You et al. 2020, arXiv:1904.00962).

Problem: with very large batches the learning rate must grow, and one global LR that is safe
for the layer with the largest update-to-weight ratio is far too timid for the others.
Idea: compute an Adam direction per tensor, then rescale it by the trust ratio
||w|| / ||update|| so every layer moves by a step proportional to its own weight norm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from deepstrata.registry import register_optimizer


class Lamb(torch.optim.Optimizer):
    """LAMB with decoupled weight decay and the weight norm clamped to [0, `clamp`] (the paper's phi).

    The variant matches `pytorch_optimizer.Lamb`'s defaults: the first moment's bias correction
    is folded into the step size (`bias_correction=True`), the second moment is not corrected,
    and weight decay is decoupled (w <- w (1 - lr wd)) before the trust ratio is measured.
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        clamp: float = 10.0,
        bias_correction: bool = True,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"LAMB needs lr, eps and weight_decay >= 0, got lr={lr}, eps={eps}, weight_decay={weight_decay}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"LAMB betas must lie in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clamp=clamp, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.mul_(beta1).add_(g, alpha=1 - beta1)  # first moment
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # second moment
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled decay
                step_size = group["lr"]
                if group["bias_correction"]:
                    step_size /= 1 - beta1 ** state["step"]
                update = m / (v.sqrt() + group["eps"])  # the Adam direction
                w_norm = torch.linalg.norm(p).clamp(max=group["clamp"])
                u_norm = torch.linalg.norm(update)
                trust = 1.0 if w_norm == 0 or u_norm == 0 else float(w_norm / (u_norm + group["eps"]))
                p.add_(update, alpha=-step_size * trust)
        return loss


@register_optimizer("lamb")
def lamb(
    params: Iterable[Any],
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    clamp: float = 10.0,
    bias_correction: bool = True,
) -> Lamb:
    """LAMB: Adam direction rescaled per layer by ||w|| / ||update|| (You et al. 2020)."""
    return Lamb(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clamp=clamp, bias_correction=bias_correction)
