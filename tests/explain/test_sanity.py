"""The cascading model-randomisation test (Adebayo et al. 2018) against its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from deepstrata.explain.sanity import cascading_randomisation, parameterised_layers, rank_correlation


class OutOfOrder(nn.Module):
    """Defines its head before its body, so forward order differs from definition order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4 * 4 * 4, 3)
        self.body = nn.Conv2d(1, 4, 3, padding=1)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)).flatten(1))


def gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        model(x).gather(1, target[:, None]).sum().backward()
    return x.grad.detach()


def test_spearman_of_identical_maps_is_one_and_equals_scipy() -> None:
    x = torch.rand(5, 1, 4, 4)
    a, b = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    assert np.allclose(rank_correlation(a, a, x), 1.0)
    assert np.allclose(rank_correlation(a, -a, x, absolute=False), -1.0)
    got = rank_correlation(a, b, x, absolute=False)
    want = [spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(5)]
    assert np.allclose(got, want)
    constant = rank_correlation(torch.zeros(5, 1, 4, 4), b, x)
    assert np.isnan(constant).all()


def test_layers_come_in_forward_order_and_unused_ones_are_left_out() -> None:
    model = OutOfOrder()
    names = [name for name, _ in parameterised_layers(model, torch.rand(2, 1, 4, 4))]
    assert names == ["body", "head"]


def test_cascade_reinitialises_top_down_and_never_touches_the_callers_model() -> None:
    torch.manual_seed(0)
    model = OutOfOrder().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 1, 4, 4)
    target = torch.zeros(6, dtype=torch.long)
    seen: list[dict[str, torch.Tensor]] = []

    def recording(m: nn.Module, xs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return gradient(m, xs, t)

    steps = cascading_randomisation(model, x, target, recording, seed=3)
    assert [s.layer for s in steps] == ["head", "body"] and [s.layers_randomised for s in steps] == [1, 2]
    trained, top_only, both = seen  # the trained model first, then one call per step
    for key, value in before.items():
        assert torch.equal(trained[key], value)
        assert torch.equal(model.state_dict()[key], value)  # the caller's model is unchanged
    assert not torch.equal(top_only["head.weight"], before["head.weight"])
    assert torch.equal(top_only["body.weight"], before["body.weight"])  # not yet: top down
    assert not torch.equal(both["body.weight"], before["body.weight"])
    assert torch.equal(both["unused.weight"], before["unused.weight"])
    # reproducible from the seed
    again = cascading_randomisation(model, x, target, gradient, seed=3)
    assert [s.spearman for s in again] == pytest.approx([s.spearman for s in steps], nan_ok=True)


def test_a_model_dependent_map_decorrelates_and_an_input_only_map_does_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x = torch.rand(32, 1, 8, 8)
    target = model(x).argmax(1)
    # the gradient of a linear model is its weight row: a new weight, an unrelated map
    grad_steps = cascading_randomisation(model, x, target, gradient)
    assert abs(grad_steps[-1].spearman) < 0.3
    # a "method" that returns the input, whatever the model: perfectly correlated after randomisation
    ink_steps = cascading_randomisation(model, x, target, lambda m, xs, t: xs.clone())
    assert all(math.isclose(s.spearman, 1.0) for s in ink_steps) and all(s.undefined == 0 for s in ink_steps)


def test_within_restricts_the_correlation_to_the_masked_positions() -> None:
    torch.manual_seed(1)
    x = torch.rand(3, 1, 4, 4)
    a, b = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    mask = torch.rand(3, 16) > 0.4
    got = rank_correlation(a, b, x, absolute=False, within=mask)
    want = [spearmanr(a[i].flatten()[mask[i]].numpy(), b[i].flatten()[mask[i]].numpy()).statistic for i in range(3)]
    assert np.allclose(got, want)
    # maps that agree only by being zero on the same background: high over the image, not over the ink
    ink = torch.zeros(8, 1, 8, 8)
    ink[:, :, 2:6, 3:5] = 1.0
    p, q = torch.randn(8, 1, 8, 8) * ink, torch.randn(8, 1, 8, 8) * ink
    within = (ink > 0).reshape(8, -1)
    assert rank_correlation(p, q, ink).mean() > 0.6
    assert abs(rank_correlation(p, q, ink, within=within).mean()) < 0.3
