"""ODIN: temperature scaling alone at epsilon 0, the paper's gradient step by hand on a linear model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_odin import ODINScorer


def _linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(6, 4).eval()


def test_zero_epsilon_is_temperature_scaled_msp() -> None:
    model = _linear()
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(1))
    scorer = ODINScorer(temperature=10.0, epsilon=0.0).fit(model, x)
    with torch.no_grad():
        expected = -(model(x) / 10.0).softmax(1).max(1).values
    assert torch.allclose(scorer.score(model, x), expected, atol=1e-6)


def test_perturbation_equals_the_closed_form_gradient_step() -> None:
    """For z = Wx + b: grad_x of -log softmax(z/T)_yhat is -(1/T) W^T (e_yhat - p), so x' = x - eps * sign of it."""
    model, t, eps = _linear(), 1000.0, 0.05
    x = torch.randn(25, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        p = (model(x) / t).softmax(1)
        onehot = nn.functional.one_hot(p.argmax(1), 4).float()
        grad = -((onehot - p) @ model.weight) / t  # (N, 6)
        x_step = x - eps * grad.sign()
        expected = -(model(x_step) / t).softmax(1).max(1).values
    scorer = ODINScorer(temperature=t, epsilon=eps, batch_size=7).fit(model, x)
    assert torch.allclose(scorer.score(model, x), expected, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())  # only the input's gradient was taken
    assert not model.training


def test_the_step_raises_in_distribution_confidence() -> None:
    model = _linear(3)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    plain = ODINScorer(epsilon=0.0).fit(model, x).score(model, x)
    stepped = ODINScorer(epsilon=0.01).fit(model, x).score(model, x)
    assert bool((stepped <= plain + 1e-9).all()) and float((plain - stepped).mean()) > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UserError, match="temperature > 0 and epsilon >= 0"):
        ODINScorer(epsilon=-1.0).fit(_linear(), torch.randn(5, 6))
