"""Square attack: a score-based, gradient-free L-infinity attack by random square updates.

Problem: gradient attacks can be fooled by a model whose gradients are masked or obfuscated
(a non-differentiable step, a saturated softmax), and then report robustness that is not there.
Idea: use only the model's scores: start from vertical stripes of +-eps, and at each query
propose changing one random square window (side from the fraction `p` of pixels, shrinking on
a fixed schedule from `p_init`) to a fresh +-eps per channel; keep the proposal when it lowers
the margin `logit_y - max_{j != y} logit_j`, and stop on an example once the margin is <= 0.
(Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search"; the schedule and the stripes follow the authors' code.)

Queries are counted per example: the clean input is the first (an example already misclassified
is returned as it is), the stripes the second, and every proposal one more; no example is sent
to the model more than `n_queries` times.
"""

from __future__ import annotations

import math

import torch

from deepstrata.attacks.base import Bound, Model, as_tensor, check_threat, margin
from deepstrata.errors import UserError
from deepstrata.registry import register_attack

# Proposals for an example whose window would not change (clipped at the box) are drawn again,
# at most this many times.
MAX_REDRAWS = 20


def p_selection(p_init: float, it: int, n_queries: int) -> float:
    """The fraction of pixels the window covers at iteration `it`: p_init halved at the paper's milestones (out of 10,000)."""
    it = int(it / n_queries * 10000)
    milestones = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, 10000)
    for k, (start, end) in enumerate(zip(milestones, milestones[1:]), start=1):
        if start < it <= end:
            return p_init / 2**k
    return p_init


@register_attack("square", norms=("linf",))
def square(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    lower: Bound = 0.0,
    upper: Bound = 1.0,
    unit: Bound = 1.0,
    norm: str = "linf",
    n_queries: int = 5000,
    p_init: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Square attack (Andriushchenko et al. 2020), L-infinity: random +-eps squares kept when they lower the margin.

    x: (N, C, H, W) model inputs; y: (N,) labels; eps in raw pixel units (attacks/base.py).
    Uses the model's outputs only, at most `n_queries` forwards per example. Returns x_adv.
    """
    check_threat("square", x, eps, norm, norms=("linf",))
    if x.dim() != 4:
        raise UserError(f"square: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if n_queries < 2 or not 0 < p_init <= 1:
        raise UserError(f"square: n_queries must be >= 2 and 0 < p_init <= 1, got n_queries={n_queries}, p_init={p_init}")
    n, c, h, w = x.shape
    lo, hi = as_tensor(lower, x), as_tensor(upper, x)
    e = torch.broadcast_to(eps * as_tensor(unit, x), (1, c, h, w))  # eps in model units, per feature

    def signs(*shape: int) -> torch.Tensor:
        return (torch.randint(0, 2, shape, generator=generator) * 2 - 1).to(x)

    with torch.no_grad():
        x = x.detach()
        x_best = x.clone()
        m_best = margin(model(x), y)  # query 1: the clean input
        active = (m_best > 0).nonzero().squeeze(1)
        if len(active):  # query 2: vertical stripes, (n, c, 1, w) signs: what works best untargeted
            stripes = torch.max(torch.min(x[active] + signs(len(active), c, 1, w) * e, hi), lo)
            x_best[active], m_best[active] = stripes, margin(model(stripes), y[active])
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        for it in range(n_queries - 2):
            active = (m_best > 0).nonzero().squeeze(1)
            if not len(active):
                break
            k = len(active)
            s = min(max(round(math.sqrt(p_selection(p_init, it, n_queries) * h * w)), 1), h - 1)  # the window's side
            top = torch.randint(0, h - s, (k,), generator=generator).to(x.device)
            left = torch.randint(0, w - s, (k,), generator=generator).to(x.device)
            in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)  # (k, h)
            in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)  # (k, w)
            window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (k, 1, h, w)
            x_act, best_act = x[active], x_best[active]
            proposal = best_act - x_act
            redraw = torch.ones(k, dtype=torch.bool, device=x.device)
            for _ in range(MAX_REDRAWS):
                new = signs(k, c, 1, 1) * e  # one sign per channel over the whole window
                proposal = torch.where(window & redraw[:, None, None, None], new, proposal)
                moved = (torch.max(torch.min(x_act + proposal, hi), lo) - best_act).abs() >= 1e-7
                redraw = ~(moved & window).flatten(1).any(dim=1)
                if not bool(redraw.any()):
                    break
            x_new = torch.max(torch.min(x_act + proposal, hi), lo)
            m_new = margin(model(x_new), y[active])
            better = m_new < m_best[active]
            x_best[active[better]], m_best[active[better]] = x_new[better], m_new[better]
    return x_best
