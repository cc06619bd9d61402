"""Gradient estimators on objectives with a known gradient: unbiasedness, variance, and a real use."""

from __future__ import annotations

import pytest
import torch

from deepstrata.estimators.bandit import train_bandit
from deepstrata.estimators.gumbel_softmax import gumbel_softmax
from deepstrata.estimators.score_function import leave_one_out_baseline, reinforce_surrogate
from deepstrata.estimators.variance import categorical_linear, gaussian_quadratic

# |mean - truth| within 4 standard errors: fails ~1 in 16,000 coordinates for an unbiased estimator
Z = 4.0


@pytest.mark.parametrize("estimator", ["reinforce", "reinforce_baseline", "pathwise"])
def test_gaussian_estimators_are_unbiased(estimator):
    stats = gaussian_quadratic(estimator, mu=1.0, sigma=1.0, c=3.0)
    assert stats.z_scores().abs().max() < Z, (stats.mean, stats.truth, stats.stderr)


@pytest.mark.parametrize("estimator", ["reinforce", "reinforce_baseline"])
def test_categorical_score_function_is_unbiased(estimator):
    stats = categorical_linear(estimator)
    assert stats.z_scores().abs().max() < Z, (stats.mean, stats.truth, stats.stderr)


def test_baseline_reduces_variance_and_pathwise_is_lowest():
    g = {e: gaussian_quadratic(e).variance for e in ("reinforce", "reinforce_baseline", "pathwise")}
    assert g["reinforce_baseline"] < 0.8 * g["reinforce"]
    assert g["pathwise"] < 0.2 * g["reinforce_baseline"]
    c = {e: categorical_linear(e).variance for e in ("reinforce", "reinforce_baseline")}
    assert c["reinforce_baseline"] < 0.1 * c["reinforce"]  # rewards with a large common offset


def test_straight_through_gumbel_is_low_variance_but_biased():
    st = categorical_linear("gumbel_st")
    sf = categorical_linear("reinforce_baseline")
    assert st.variance < sf.variance
    assert st.z_scores().abs().max() > Z  # the honest cost of the relaxation: a measurable bias


def test_gumbel_softmax_samples_are_exact_categorical_one_hots():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    y = gumbel_softmax(logits.expand(40000, -1), tau=0.7, generator=gen)
    assert torch.all(y.sum(-1) == 1) and torch.all((y == 0) | (y == 1))
    freq, p = y.mean(0), torch.softmax(logits, 0)
    assert torch.all((freq - p).abs() < 4 * (p * (1 - p) / 40000).sqrt())
    soft = gumbel_softmax(logits, tau=0.7, hard=False, generator=gen)
    assert torch.isclose(soft.sum(), torch.tensor(1.0, dtype=torch.float64)) and torch.all(soft > 0)


def test_straight_through_gradient_is_the_relaxed_softmax_gradient():
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    w = torch.tensor([1.0, 2.0, 3.0])
    (gumbel_softmax(logits, tau=0.5, generator=torch.Generator().manual_seed(1)) @ w).backward()
    g_st = logits.grad.clone()
    logits.grad = None
    (gumbel_softmax(logits, tau=0.5, hard=False, generator=torch.Generator().manual_seed(1)) @ w).backward()
    assert torch.allclose(g_st, logits.grad)


def test_leave_one_out_baseline_and_shape_checks():
    v = torch.tensor([1.0, 2.0, 6.0])
    assert torch.allclose(leave_one_out_baseline(v), torch.tensor([4.0, 3.5, 1.5]))
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_baseline(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="differs"):
        reinforce_surrogate(torch.zeros(3), torch.zeros(4))


@pytest.mark.parametrize("baseline", [True, False])
def test_reinforce_learns_the_best_bandit_arm(baseline):
    result = train_bandit([0.2, 0.5, 0.8, 0.6], steps=150, batch=16, lr=0.1, baseline=baseline)
    assert result.best_arm_prob[0] < 0.35  # starts uniform-ish
    assert result.best_arm_prob[-1] > 0.95
    assert sum(result.mean_reward[-20:]) / 20 > 0.7
