"""LAMB equals pytorch_optimizer's Lamb over 100 steps, and its trust ratio makes steps layer-relative."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.optim.lamb import Lamb


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 100) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 10, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(("weight_decay", "bias_correction"), [(0.01, True), (0.0, False)])
def test_lamb_matches_pytorch_optimizer_over_100_steps(weight_decay: float, bias_correction: bool) -> None:
    from pytorch_optimizer import Lamb as ReferenceLamb

    ours, ref = _model(0), _model(0)
    _train(ours, Lamb(ours.parameters(), lr=1e-2, weight_decay=weight_decay, bias_correction=bias_correction))
    # pytorch_optimizer: adam_debias=True means "do not correct the first moment in the step size".
    _train(ref, ReferenceLamb(ref.parameters(), lr=1e-2, weight_decay=weight_decay, adam_debias=not bias_correction))
    moved = sum(float((a - b).detach().abs().sum()) for a, b in zip(ours.parameters(), _model(0).parameters()))
    assert moved > 1.0  # the comparison is not between two untouched models
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_trust_ratio_makes_the_step_proportional_to_the_weight_norm() -> None:
    # Two tensors with the same gradient direction but weights 100x apart move by amounts 100x apart.
    small = nn.Parameter(torch.full((4,), 0.01))
    large = nn.Parameter(torch.full((4,), 1.0))
    opt = Lamb([small, large], lr=0.1)
    small.grad, large.grad = torch.ones(4), torch.ones(4)
    before = small.detach().clone(), large.detach().clone()
    opt.step()
    step_small = (small.detach() - before[0]).norm()
    step_large = (large.detach() - before[1]).norm()
    torch.testing.assert_close(step_large / step_small, torch.tensor(100.0), rtol=1e-3, atol=0)
