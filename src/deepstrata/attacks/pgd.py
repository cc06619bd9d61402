"""Projected gradient descent (PGD): the strongest first-order attack within an eps-ball.

Problem: one gradient step (FGSM) underestimates how far a model can be pushed inside the
eps-ball, because the loss is not linear over it.
Idea: from the input (or a uniform random point of the ball), take `steps` steps of size
`step_size` along the steepest-ascent direction of the loss for the norm (sign of the gradient for
L-infinity, the normalised gradient for L2), clip to the valid input box after each step and
project the perturbation back onto the eps-ball. With `restarts > 1` the attack is repeated from
fresh random starts on the examples not yet fooled and, per example, the first adversarial that
fools the model is kept, else the one of highest loss. (Madry et al. 2018, "Towards Deep
Learning Models Resistant to Adversarial Attacks".)

Madry et al.'s PGD returns the last iterate, and so does the default here (what adversarial
training wants: the highest-loss point the steps reach). An evaluation wants the strongest
attack instead: with `best_iterate=True` an example counts as broken as soon as any iterate
fools the model, and that iterate is returned (as AutoAttack's APGD does, Croce & Hein 2020).
The logits of every iterate are computed for its gradient anyway, so this costs nothing.

The step order is that of the Adversarial Robustness Toolbox's `ProjectedGradientDescent`
(step, clip to the box, project onto the ball), so with `random_start=False` both give the
same examples (tests/attacks/test_pgd.py).
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
    fooled,
    input_gradient,
    keep_better,
    project,
    random_in_ball,
)
from deepstrata.errors import UserError
from deepstrata.registry import register_attack


@register_attack("pgd", norms=("linf", "l2"))
def pgd(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    lower: Bound = 0.0,
    upper: Bound = 1.0,
    unit: Bound = 1.0,
    norm: Norm = "linf",
    steps: int = 40,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    best_iterate: bool = False,
    loss: Loss | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PGD (Madry et al. 2018): steps of steepest ascent, each clipped to the box and projected onto the eps-ball.

    x: (N, ...) model inputs; y: (N,) labels (or whatever `loss` takes as targets, e.g. the clean
    probabilities for TRADES); eps and step_size in raw pixel units (see attacks/base.py);
    step_size defaults to 2.5 * eps / steps (Madry et al.'s rule). best_iterate: return, per
    example, the first iterate that fools the model (if any) instead of the last one. Returns
    x_adv, shaped like x.
    """
    check_threat("pgd", x, eps, norm)
    if steps < 1 or restarts < 1:
        raise UserError(f"pgd: steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
    loss = loss or cross_entropy_per_example
    alpha = 2.5 * eps / steps if step_size is None else float(step_size)
    lo, hi, u = as_tensor(lower, x), as_tensor(upper, x), as_tensor(unit, x)
    x = x.detach()
    best = best_loss = best_fooled = None
    for _ in range(restarts):
        # every restart draws a start for the whole batch (one random stream whatever succeeds),
        # and only the examples no earlier restart has fooled are attacked again
        start = x
        if random_start:
            start = torch.max(torch.min(x + u * random_in_ball(x.shape, eps, norm, generator=generator, like=x), hi), lo)
        active = slice(None) if best_fooled is None else (~best_fooled).nonzero().squeeze(1)
        x_adv = _ascend(model, x[active], start[active], y[active], _rows(lo, active, x), _rows(hi, active, x), _rows(u, active, x), eps, norm, steps, alpha, loss, best_iterate)
        if restarts == 1:
            return x_adv.detach()
        with torch.no_grad():
            logits = model(x_adv)
            losses, is_fooled = loss(logits, y[active]), fooled(logits, y[active])
        if best is None:
            best, best_loss, best_fooled = x_adv, losses, is_fooled
        else:
            # the kept tensors are this function's own (the first restart's output): updated in place
            best[active], best_loss[active], best_fooled[active] = keep_better(best[active], best_loss[active], best_fooled[active], x_adv, losses, is_fooled)
        if bool(best_fooled.all()):
            break
    return best.detach()


def _rows(bound: torch.Tensor, rows: slice | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A bound (broadcastable to the batch) restricted to some examples; per-feature bounds pass as they are."""
    return bound[rows] if bound.dim() == like.dim() and bound.shape[0] == like.shape[0] else bound


def _ascend(
    model: Model,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    u: torch.Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    alpha: float,
    loss: Loss,
    best_iterate: bool,
) -> torch.Tensor:
    """`steps` PGD steps from x_adv; the last iterate, or per example the first one that fools the model."""
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device) if best_iterate else None
    kept = x_adv
    for _ in range(steps):
        grad, _, logits = input_gradient(model, x_adv, y, loss)
        if found is not None:  # logits are those of x_adv, the iterate before this step
            new = fooled(logits, y) & ~found
            kept = torch.where(new.view(-1, *[1] * (x.dim() - 1)), x_adv, kept)
            found = found | new
        # the gradient with respect to the raw-unit perturbation is unit * grad (unit > 0)
        x_adv = torch.max(torch.min(x_adv + u * (alpha * ascent_direction(u * grad, norm)), hi), lo)
        x_adv = x + u * project((x_adv - x) / u, eps, norm)
    if found is None:
        return x_adv.detach()
    return torch.where(found.view(-1, *[1] * (x.dim() - 1)), kept, x_adv).detach()
