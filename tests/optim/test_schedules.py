"""Each schedule produces the LR curve it promises, measured step by step."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.registry import registry


def _lrs(name: str, steps: int, lr: float = 1.0, **kwargs: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = registry("scheduler").get(name)(opt, steps, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("decay", ["cosine", "linear", "step", "exponential"])
def test_linear_warmup_then_decay(decay: str) -> None:
    extra = {"step": {"step_size": 20, "gamma": 0.5}, "exponential": {"gamma": 0.97}}.get(decay, {})
    lrs = _lrs(decay, 100, warmup_steps=10, **extra)
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear ramp to the peak
    assert lrs[10] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[10:], lrs[11:]))  # never rises after the warm-up
    assert lrs[-1] < 0.25


def test_step_and_exponential_follow_their_formulas() -> None:
    step = _lrs("step", 60, step_size=20, gamma=0.5)
    assert step[19] == 1.0 and step[20] == 0.5 and step[40] == 0.25
    expo = _lrs("exponential", 50, gamma=0.9)
    assert expo[10] == pytest.approx(0.9**10)


def test_cosine_ends_at_the_floor() -> None:
    lrs = _lrs("cosine", 101, min_lr_ratio=0.1)
    assert lrs[50] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 50 / 101)))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_cyclic_triangular_goes_up_and_down_periodically() -> None:
    lrs = _lrs("cyclic", 80, lr=1.0, base_lr_ratio=0.1, step_size_up=10)
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0) and lrs[20] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.55)
    assert lrs[:20] == pytest.approx(lrs[20:40])  # the cycle repeats


def test_one_cycle_rises_to_the_peak_then_anneals_far_below_the_start() -> None:
    lrs = _lrs("one_cycle", 100, lr=1.0, pct_start=0.3)
    peak = max(range(100), key=lrs.__getitem__)
    assert lrs[0] == pytest.approx(1 / 25) and 25 <= peak <= 32 and lrs[peak] == pytest.approx(1.0, rel=1e-3)
    assert lrs[-1] < lrs[0] / 100


def test_reduce_on_plateau_cuts_the_lr_only_after_patience_bad_validations() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = registry("scheduler").get("reduce_on_plateau")(opt, 100, factor=0.5, patience=2)
    history = []
    for value in [1.0, 0.9, 0.8, 0.85, 0.81, 0.82, 0.9, 0.9, 0.7, 0.75]:
        sched.observe(value)
        sched.step()
        history.append(opt.param_groups[0]["lr"])
    # improvements at 1-3; bad at 0.85, 0.81, 0.82 -> the third bad one cuts; two more bad, then 0.7 improves.
    assert history == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    again = registry("scheduler").get("reduce_on_plateau")(opt2, 100, factor=0.5, patience=2)
    again.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.5
