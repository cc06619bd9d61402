"""Last-layer Laplace: the Hessian against autograd, tau against a brute-force evidence search, the predictive against MC."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepstrata.errors import UserError
from deepstrata.learned.last_layer_laplace import LastLayerLaplace, mc_predictive, probit_predictive


def _problem(seed: int = 0, n: int = 60, dim: int = 2, k: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    centres = 1.5 * torch.randn(k, dim, generator=g, dtype=torch.float64)
    features = centres[labels] + torch.randn(n, dim, generator=g, dtype=torch.float64)
    weight, bias = centres.clone(), -0.5 * centres.square().sum(1)
    return features, labels, weight, bias


def _autograd_hessian(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Exact Hessian of sum_n CE(W phi_n + b, y_n) w.r.t. theta = vec([W, b]) (row by row)."""
    theta = torch.cat([weight, bias[:, None]], dim=1).reshape(-1)
    k, e = weight.shape[0], weight.shape[1] + 1

    def loss(t: torch.Tensor) -> torch.Tensor:
        w = t.view(k, e)
        return F.cross_entropy(features @ w[:, :-1].T + w[:, -1], labels, reduction="sum")

    return torch.autograd.functional.hessian(loss, theta)


def test_the_hessian_is_the_exact_one() -> None:
    """The logits are linear in the last layer, so the GGN equals autograd's Hessian of the summed NLL."""
    features, labels, weight, bias = _problem()
    tau = 2.0
    la = LastLayerLaplace(prior_precision=tau).fit(features, labels, weight, bias)
    hessian = _autograd_hessian(features, labels, weight, bias)
    precision = torch.linalg.inv(la.covariance_)
    torch.testing.assert_close(precision, hessian + tau * torch.eye(len(hessian), dtype=torch.float64), rtol=1e-8, atol=1e-8)
    assert la.prior_precision_ == tau
    assert la.nll_ == pytest.approx(float(F.cross_entropy(features @ weight.T + bias, labels)), rel=1e-12)


def test_the_prior_precision_maximises_the_marginal_likelihood() -> None:
    """tau from the bisection equals the best of a fine grid of log Z computed directly with slogdet."""
    features, labels, weight, bias = _problem(seed=1)
    la = LastLayerLaplace().fit(features, labels, weight, bias)
    hessian = _autograd_hessian(features, labels, weight, bias)
    theta = torch.cat([weight, bias[:, None]], dim=1).reshape(-1)
    p = len(theta)
    nll = float(F.cross_entropy(features @ weight.T + bias, labels, reduction="sum"))

    def log_z(tau: float) -> float:
        logdet = torch.linalg.slogdet(hessian + tau * torch.eye(p, dtype=torch.float64)).logabsdet
        return -nll - 0.5 * tau * float(theta @ theta) + 0.5 * p * math.log(tau) - 0.5 * float(logdet)

    grid = torch.logspace(-3, 3, 3001, dtype=torch.float64).tolist()  # 0.2% apart
    best = max(grid, key=log_z)
    assert la.prior_precision_ == pytest.approx(best, rel=5e-3)
    assert la.log_marginal_likelihood_ == pytest.approx(log_z(la.prior_precision_), rel=1e-9)
    assert la.log_marginal_likelihood_ >= max(log_z(t) for t in grid) - 1e-9


def test_the_predictive_matches_monte_carlo_over_the_posterior() -> None:
    """Sample theta ~ N(theta*, Sigma) directly: the logits' mean and covariance, and the mean softmax, agree."""
    features, labels, weight, bias = _problem(seed=2, n=30)
    la = LastLayerLaplace(prior_precision=1.0, predictive="mc", mc_samples=20000, seed=3).fit(features, labels, weight, bias)
    x = features[:5] * 1.5  # some inputs a little off the data
    g = torch.Generator().manual_seed(4)
    root = torch.linalg.cholesky(la.covariance_)
    thetas = la.weight_.reshape(-1) + torch.randn(40000, len(root), generator=g, dtype=torch.float64) @ root.T  # (S, P)
    w = thetas.view(-1, *la.weight_.shape)  # (S, K, E)
    logits = torch.einsum("ske,ne->snk", w, torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1))  # (S, N, K)

    mean, cov = la.logit_distribution(x)
    centred = logits - logits.mean(0)
    standard_error = (cov.diagonal(dim1=1, dim2=2) / len(logits)).sqrt()
    assert bool(((mean - logits.mean(0)).abs() < 4 * standard_error).all())  # within 4 Monte Carlo standard errors
    torch.testing.assert_close(cov, torch.einsum("snk,snl->nkl", centred, centred) / len(logits), atol=0.05, rtol=0.03)

    direct = logits.softmax(-1).mean(0).float()  # (N, K): the predictive by definition
    torch.testing.assert_close(la.predict_proba(x), direct, atol=0.01, rtol=0)
    probit = LastLayerLaplace(prior_precision=1.0).fit(features, labels, weight, bias).predict_proba(x)
    torch.testing.assert_close(probit, direct, atol=0.03, rtol=0)  # an approximation: close, not equal
    map_probs = (x @ weight.T + bias).softmax(1).float()
    assert (probit - direct).abs().mean() < 0.5 * (map_probs - direct).abs().mean()  # and much closer than the MAP


def test_far_from_the_data_laplace_is_less_confident_than_the_map() -> None:
    features, labels, weight, bias = _problem(seed=5)
    la = LastLayerLaplace().fit(features, labels, weight, bias)
    far = 20.0 * features[:10]
    map_conf = (far @ weight.T + bias).softmax(1).max(1).values
    assert bool((la.predict_proba(far).max(1).values.double() < map_conf - 1e-3).all())


def test_formulas_on_hand_examples() -> None:
    mean = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    cov = torch.diag(torch.tensor([8.0 / math.pi, 0.0], dtype=torch.float64))[None]
    # Centred: mean (1, -1), covariance (8/pi) [[1/4, -1/4], [-1/4, 1/4]], so each scale is sqrt(1 + 1/4).
    expected = torch.softmax(torch.tensor([[1.0, -1.0]], dtype=torch.float64) / math.sqrt(1.25), dim=1)
    torch.testing.assert_close(probit_predictive(mean, cov), expected)
    zero = torch.zeros(1, 2, 2, dtype=torch.float64)  # no uncertainty: MC is the plain softmax
    torch.testing.assert_close(mc_predictive(mean, zero, samples=3, generator=torch.Generator()), mean.softmax(1))


def test_refuses_heads_too_large_and_bad_settings() -> None:
    features, labels, weight, bias = _problem()
    with pytest.raises(UserError, match="max_parameters=5"):
        LastLayerLaplace(max_parameters=5).fit(features, labels, weight, bias)
    with pytest.raises(UserError, match="prior_precision > 0"):
        LastLayerLaplace(prior_precision=0.0).fit(features, labels, weight, bias)
    without_bias = LastLayerLaplace(prior_precision=1.0).fit(features, labels, weight)
    assert not without_bias.has_bias_ and without_bias.covariance_.shape == (6, 6)
