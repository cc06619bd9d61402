"""Exact Shapley values against closed forms, and KernelSHAP against exact Shapley values on a small tabular MLP."""

from __future__ import annotations

import pytest
import torch
from captum.attr import KernelShap

from deepstrata.explain.base import make_explainer
from deepstrata.explain.shapley import coalitions, exact_shapley, shapley_values
from tests.explain.small_models import tabular_mlp


def test_exact_shapley_of_a_linear_model_is_weight_times_difference():
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 3)
    x, baseline = torch.randn(4, 5), torch.randn(4, 5)
    target = torch.tensor([0, 1, 2, 1])
    phi = exact_shapley(linear, x, target, baseline)
    torch.testing.assert_close(phi, linear.weight[target].detach() * (x - baseline))


def test_exact_shapley_of_a_product_splits_the_interaction_evenly():
    # v(S) = 1 when both players 0 and 1 are present: each gets 1/2, player 2 nothing.
    value = torch.tensor([float(s[0] and s[1]) for s in coalitions(3).tolist()], dtype=torch.float64)
    torch.testing.assert_close(shapley_values(value, 3), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


@pytest.fixture(scope="module")
def tabular():
    model, x = tabular_mlp(features=8)
    with torch.no_grad():
        target = model(x[:6]).argmax(1)
    return model, x[:6], target


def test_exact_shapley_is_efficient_on_a_trained_mlp(tabular):
    model, x, target = tabular
    phi = make_explainer("exact_shapley").attribute(model, x, target)
    with torch.no_grad():
        gap = model(x).gather(1, target[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(phi.sum(1), gap, atol=1e-5, rtol=1e-5)


def test_kernel_shap_within_0_01_of_exact_shapley_values(tabular):
    """The issue's criterion: an 8-feature MLP, zero baseline; n_samples covering all 256 coalitions."""
    model, x, target = tabular
    exact = make_explainer("exact_shapley").attribute(model, x, target)
    estimate = make_explainer("kernel_shap", n_samples=256, perturbations_per_eval=256).attribute(model, x, target)
    assert estimate.shape == x.shape
    assert float((estimate - exact).abs().max()) <= 0.01
    assert float(exact.abs().max()) > 0.1, "the model's Shapley values should not all be near zero"


def test_captums_sampled_kernel_shap_approaches_the_exact_values(tabular):
    """Below 2^M samples the wrapper is Captum's sampler: its error shrinks with samples (printed: the max error at 100 and 4,000 samples)."""
    model, x, target = tabular
    x, target = x[:2], target[:2]
    exact = make_explainer("exact_shapley").attribute(model, x, target)
    errors = []
    for n in (100, 4000):
        ours = make_explainer("kernel_shap", n_samples=n, perturbations_per_eval=500, every_coalition=False).attribute(model, x, target)
        errors.append(float((ours - exact).abs().max()))
    print(f"Captum KernelShap, 8 features: max |error| {errors[0]:.4f} at 100 samples, {errors[1]:.4f} at 4,000")
    assert errors[1] < errors[0] and errors[1] < 0.05, errors
    # and it is Captum's KernelShap, example by example, under the same seed:
    torch.manual_seed(0)
    direct = torch.cat([KernelShap(model).attribute(x[i : i + 1], baselines=0.0, target=target[i : i + 1], n_samples=100) for i in range(2)])
    torch.testing.assert_close(make_explainer("kernel_shap", n_samples=100, every_coalition=False).attribute(model, x, target), direct)


def test_exact_shapley_refuses_wide_inputs():
    reason = make_explainer("exact_shapley", max_features=10).why_not(torch.nn.Flatten(), torch.zeros(1, 1, 8, 8))
    assert "64 features" in reason and "kernel_shap" in reason
