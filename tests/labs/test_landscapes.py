"""The optimizer landscape lab's measurements show the textbook facts."""

from __future__ import annotations

import math

import pytest

from deepstrata.labs.landscapes import LAB_OPTIMIZERS, best_stable_lr, bounded_saddle, quadratic, rosenbrock, run, saddle


def test_momentum_needs_far_fewer_steps_than_sgd_on_an_ill_conditioned_quadratic():
    kappa = 300.0  # largest curvature L = kappa; GD is stable only for lr < 2 / L
    grid = [c / kappa for c in (0.5, 1.0, 1.5, 1.9)]
    f, start, target = quadratic(kappa), [1.0, 1.0], 1e-6
    sgd_lr, sgd_steps = best_stable_lr(f, start, "sgd", lrs=grid, steps=3000, target=target)
    mom_lr, mom_steps = best_stable_lr(f, start, "momentum", lrs=grid, steps=3000, target=target)
    assert sgd_steps is not None and mom_steps is not None
    assert sgd_lr == pytest.approx(1.9 / kappa)  # the best stable rate is at the stability edge
    assert mom_steps * 4 < sgd_steps, (mom_steps, sgd_steps)


def test_gd_on_the_stable_manifold_stalls_at_the_saddle_while_a_tiny_perturbation_escapes():
    on = run(saddle(), [1.0, 0.0], "sgd", lr=0.1, steps=150)
    off = run(saddle(), [1.0, 1e-8], "sgd", lr=0.1, steps=150)
    assert on.points[-1][1] == 0.0 and abs(on.points[-1][0]) < 1e-10 and abs(on.losses[-1]) < 1e-12  # converged to the saddle
    assert off.losses[-1] < -1.0  # |y| grew by (1 + 2 lr)^t from 1e-8 to order 1 and beyond


def test_higher_dimensional_saddle_stalls_on_manifold_and_escapes_to_the_minima_off_it():
    f = bounded_saddle(dim=10, unstable=3)
    on = run(f, [0.0] * 3 + [1.0] * 7, "sgd", lr=0.1, steps=400)
    off = run(f, [1e-8, -1e-8, 1e-8] + [1.0] * 7, "sgd", lr=0.1, steps=400)
    assert abs(on.losses[-1]) < 1e-12
    assert off.losses[-1] == pytest.approx(-3 / 4, abs=1e-6)  # the minima at x_i = +-1, f = -u/4


def test_adam_update_size_is_invariant_to_gradient_scale_and_sgd_is_not():
    f = quadratic(10.0)
    ratio = {}
    for opt in ("sgd", "adam"):
        small = run(f, [1.0, -0.5], opt, lr=1e-3, steps=5)
        big = run(f, [1.0, -0.5], opt, lr=1e-3, steps=5, grad_scale=1000.0)
        ratio[opt] = [b / a for a, b in zip(small.update_norms, big.update_norms)]
    assert ratio["sgd"][0] == pytest.approx(1000.0)
    assert all(abs(r - 1) < 1e-3 for r in ratio["adam"]), ratio["adam"]


@pytest.mark.parametrize("name", sorted(LAB_OPTIMIZERS))
def test_every_lab_optimizer_makes_progress_on_rosenbrock(name):
    t = run(rosenbrock(), [-1.5, 2.0], name, lr=1e-3 if name in ("sgd", "momentum", "nesterov") else 1e-2, steps=300)
    assert math.isfinite(t.losses[-1]) and t.losses[-1] < t.losses[0]


def test_bad_saddle_dimensions_are_explained():
    with pytest.raises(ValueError, match="unstable <= dim"):
        bounded_saddle(dim=2, unstable=3)
