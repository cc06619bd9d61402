"""Fast gradient sign method (FGSM): one step along the sign of the loss gradient.

Problem: a linear model's output moves by eps * ||w||_1 when every input moves by eps in the
direction of sign(w), and deep networks are linear enough for such a step to fool them.
Idea: `x_adv = clip(x + eps * sign(grad_x loss(model(x), y)), lower, upper)` (Goodfellow, Shlens &
Szegedy 2015, "Explaining and Harnessing Adversarial Examples"). With `random_start` the step
starts from a uniform random point of the ball, is `step_size = 1.25 * eps` long and is projected
back onto the ball: the "fast adversarial training" attack of Wong, Rice & Kolter 2020 ("Fast is
better than free"), which trains nearly as robust as PGD at the cost of one gradient.
For `norm="l2"` the step is along the normalised gradient (the fast gradient method).
"""

from __future__ import annotations

import torch

from deepstrata.attacks.base import (
    Bound,
    Loss,
    Model,
    Norm,
    as_tensor,
    ascent_direction,
    check_threat,
    cross_entropy_per_example,
    input_gradient,
    project,
    random_in_ball,
)
from deepstrata.registry import register_attack


@register_attack("fgsm", norms=("linf", "l2"))
def fgsm(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    lower: Bound = 0.0,
    upper: Bound = 1.0,
    unit: Bound = 1.0,
    norm: Norm = "linf",
    random_start: bool = False,
    step_size: float | None = None,
    loss: Loss | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015): x + eps * sign(grad), clipped to the box; with random_start, Wong et al. 2020's FGSM-RS.

    x: (N, ...) model inputs, y: (N,) labels; eps and step_size in raw pixel units (attacks/base.py);
    step_size defaults to eps (1.25 * eps with random_start). Returns x_adv, shaped like x.
    """
    check_threat("fgsm", x, eps, norm)
    loss = loss or cross_entropy_per_example
    alpha = (1.25 * eps if random_start else eps) if step_size is None else float(step_size)
    lo, hi, u = as_tensor(lower, x), as_tensor(upper, x), as_tensor(unit, x)
    x = x.detach()
    start = x
    if random_start:
        start = torch.max(torch.min(x + u * random_in_ball(x.shape, eps, norm, generator=generator, like=x), hi), lo)
    grad, _, _ = input_gradient(model, start, y, loss)
    x_adv = torch.max(torch.min(start + u * (alpha * ascent_direction(u * grad, norm)), hi), lo)
    return (x + u * project((x_adv - x) / u, eps, norm)).detach()
