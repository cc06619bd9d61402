"""Optimisation landscapes: how each optimizer moves on surfaces whose shape is known exactly.

Problem: on a real network one cannot tell whether an optimizer is slow because of curvature,
saddles or gradient scale. Idea: run the registered optimizers on textbook surfaces where each
difficulty appears alone: an ill-conditioned quadratic (GD zig-zags; momentum needs ~sqrt(kappa)
instead of ~kappa steps, Polyak 1964), the Rosenbrock valley (Rosenbrock 1960), and saddles
x^2 - y^2 and a bounded d-dimensional one (GD started on the stable manifold converges to the
saddle; any perturbation escapes, Dauphin et al. 2014; Lee et al. 2016); and measure the effect
of rescaling the gradient (Adam's step is scale-free, Kingma & Ba 2015).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from deepstrata.registry import registry

Objective = Callable[[torch.Tensor], torch.Tensor]

# Lab optimizers: a registered optimizer name plus fixed extra arguments.
LAB_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "rmsprop": ("rmsprop", {}),
    "adagrad": ("adagrad", {}),
    "adam": ("adam", {}),
    "adamw": ("adamw", {}),
    "lamb": ("lamb", {}),
}


def quadratic(kappa: float = 100.0) -> Objective:
    """f(x, y) = (x^2 + kappa y^2) / 2: condition number kappa, minimum 0 at the origin."""
    return lambda p: 0.5 * (p[0] ** 2 + kappa * p[1] ** 2)


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Objective:
    """f(x, y) = (a - x)^2 + b (y - x^2)^2: a curved, flat-bottomed valley, minimum 0 at (a, a^2)."""
    return lambda p: (a - p[0]) ** 2 + b * (p[1] - p[0] ** 2) ** 2


def saddle() -> Objective:
    """f(x, y) = x^2 - y^2: a saddle at the origin; the stable manifold is the line y = 0."""
    return lambda p: p[0] ** 2 - p[1] ** 2


def bounded_saddle(dim: int = 10, unstable: int = 3) -> Objective:
    """f = sum_{i >= u} x_i^2 / 2 + sum_{i < u} (x_i^4 / 4 - x_i^2 / 2), in `dim` dimensions.

    The origin is a saddle with `unstable` directions of negative curvature; the minima sit at
    x_i = +-1 for i < u with f = -u / 4. Points with x_i = 0 for every i < u form the stable manifold.
    """
    if not 0 < unstable <= dim:
        raise ValueError(f"bounded_saddle: need 0 < unstable <= dim, got unstable={unstable}, dim={dim}")

    def f(p: torch.Tensor) -> torch.Tensor:
        u = p[:unstable]
        return 0.5 * (p[unstable:] ** 2).sum() + (u**4 / 4 - u**2 / 2).sum()

    return f


@dataclass
class Trajectory:
    """Points visited and loss per step (index 0 is the start)."""

    optimizer: str
    lr: float
    points: list[list[float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    update_norms: list[float] = field(default_factory=list)

    def steps_to(self, target: float) -> int | None:
        """First step at which the loss is <= target (None if never)."""
        return next((i for i, v in enumerate(self.losses) if v <= target), None)


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """A lab optimizer ("momentum", "nesterov", ...) built from the `optimizer` registry."""
    if name in LAB_OPTIMIZERS:
        reg_name, extra = LAB_OPTIMIZERS[name]
    else:
        reg_name, extra = name, {}
    return registry("optimizer").get(reg_name)(params, lr=lr, **extra)


def run(
    objective: Objective, start: list[float], optimizer: str, *, lr: float, steps: int, grad_scale: float = 1.0,
    stop_below: float | None = None,
) -> Trajectory:
    """Minimise `grad_scale * objective` from `start` for `steps` steps (float64); losses unscaled.

    `stop_below`: end early once the loss is at or below it (sweeps only need the hitting time).
    """
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(optimizer, [p], lr)
    traj = Trajectory(optimizer, lr)
    for _ in range(steps):
        loss = objective(p)
        traj.points.append(p.detach().tolist())
        traj.losses.append(loss.item())
        if not torch.isfinite(loss) or (stop_below is not None and loss.item() <= stop_below):
            return traj  # the last recorded point is where it stopped
        opt.zero_grad()
        (grad_scale * loss).backward()
        before = p.detach().clone()
        opt.step()
        traj.update_norms.append(float((p.detach() - before).norm()))
    traj.points.append(p.detach().tolist())
    traj.losses.append(objective(p).item())
    return traj


def best_stable_lr(
    objective: Objective, start: list[float], optimizer: str, *, lrs: list[float], steps: int, target: float
) -> tuple[float, int | None]:
    """The learning rate from `lrs` reaching `target` in the fewest steps, and that number of steps.

    Unstable rates (loss non-finite or above its start at the end) are skipped; if none reaches
    the target, the rate with the lowest final loss is returned with None.
    """
    best: tuple[float, int | None, float] | None = None
    for lr in lrs:
        t = run(objective, start, optimizer, lr=lr, steps=steps, stop_below=target)
        final = t.losses[-1]
        if not torch.isfinite(torch.tensor(final)) or final > t.losses[0]:
            continue
        n = t.steps_to(target)
        key = (n if n is not None else steps + 1, final)
        if best is None or key < (best[1] if best[1] is not None else steps + 1, best[2]):
            best = (lr, n, final)
    if best is None:
        raise ValueError(f"no stable learning rate for {optimizer} among {lrs}; try smaller ones")
    return best[0], best[1]


# Surfaces of the lab: objective, start point, loss target for "steps to reach".
SURFACES: dict[str, tuple[Objective, list[float], float]] = {
    "quadratic": (quadratic(100.0), [-1.5, 0.7], 1e-6),
    "rosenbrock": (rosenbrock(), [-1.5, 2.0], 1e-3),
    "saddle": (saddle(), [1.0, 1e-3], -10.0),
    "saddle_10d": (bounded_saddle(10, 3), [1e-3] * 3 + [1.0] * 7, -0.75 + 1e-6),
}
LR_GRID = [10 ** (-k / 2) for k in range(0, 9)]  # 1 ... 1e-4


def landscape_suite(
    *, optimizers: tuple[str, ...] = tuple(LAB_OPTIMIZERS), surfaces: tuple[str, ...] = tuple(SURFACES), steps: int = 1000,
    lrs: list[float] | None = None,
) -> dict[str, dict[str, Trajectory]]:
    """For each surface and optimizer: the trajectory at the best stable learning rate of the grid.

    Returns {surface: {optimizer: trajectory}}; each trajectory's `lr` is the one chosen and
    `steps_to(target)` its hitting time (None when the budget was not enough).
    """
    unknown = [s for s in surfaces if s not in SURFACES]
    if unknown:
        raise ValueError(f"unknown surface(s) {unknown} (choices: {', '.join(SURFACES)})")
    out: dict[str, dict[str, Trajectory]] = {}
    for name in surfaces:
        f, start, target = SURFACES[name]
        out[name] = {}
        for opt in optimizers:
            lr, _ = best_stable_lr(f, start, opt, lrs=lrs or LR_GRID, steps=steps, target=target)
            out[name][opt] = run(f, start, opt, lr=lr, steps=steps, stop_below=target)
    return out
