"""Measuring gradient estimators: their mean against the true gradient, and their variance.

Problem: "unbiased" and "lower variance" are claims about distributions of estimates, which a
single run cannot show. Idea: on objectives whose gradient is known in closed form, draw many
independent estimates at once (one parameter copy per replicate, so one backward pass gives
them all) and report mean, standard error and variance per estimator (Mohamed et al. 2020,
"Monte Carlo Gradient Estimation in Machine Learning").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepstrata.estimators.gumbel_softmax import gumbel_softmax
from deepstrata.estimators.pathwise import gaussian_rsample, pathwise_surrogate
from deepstrata.estimators.score_function import leave_one_out_baseline, reinforce_surrogate


@dataclass
class EstimateStats:
    """Replicate estimates (R, P) of a P-dimensional gradient, and the truth (P,)."""

    name: str
    estimates: torch.Tensor
    truth: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.estimates.mean(0)

    @property
    def stderr(self) -> torch.Tensor:
        return self.estimates.std(0) / self.estimates.shape[0] ** 0.5

    @property
    def variance(self) -> float:
        """Total variance (trace of the covariance) of one estimate."""
        return float(self.estimates.var(0).sum())

    def z_scores(self) -> torch.Tensor:
        return (self.mean - self.truth) / self.stderr


GAUSSIAN_ESTIMATORS = ("reinforce", "reinforce_baseline", "pathwise")
CATEGORICAL_ESTIMATORS = ("reinforce", "reinforce_baseline", "gumbel_st")


def gaussian_quadratic(
    estimator: str, *, mu: float = 1.0, sigma: float = 1.0, c: float = 3.0, samples: int = 8, replicates: int = 4000, seed: int = 0
) -> EstimateStats:
    """grad of E_{z ~ N(mu, sigma^2)}[(z - c)^2] = (mu - c)^2 + sigma^2 w.r.t. (mu, sigma) = (2(mu - c), 2 sigma)."""
    if estimator not in GAUSSIAN_ESTIMATORS:
        raise ValueError(f"unknown estimator '{estimator}' for the Gaussian objective (choices: {', '.join(GAUSSIAN_ESTIMATORS)})")
    gen = torch.Generator().manual_seed(seed)
    m = torch.full((replicates,), mu, dtype=torch.float64, requires_grad=True)  # one copy per replicate
    s = torch.full((replicates,), sigma, dtype=torch.float64, requires_grad=True)
    z = gaussian_rsample(m, s, samples, generator=gen)  # (S, R)
    f = (z - c) ** 2
    if estimator == "pathwise":
        surrogate = pathwise_surrogate(f)
    else:
        z = z.detach()
        log_prob = torch.distributions.Normal(m, s).log_prob(z)  # (S, R)
        b = leave_one_out_baseline(f) if estimator == "reinforce_baseline" else None
        surrogate = reinforce_surrogate(log_prob, f, baseline=b)
    gm, gs = torch.autograd.grad(surrogate, (m, s))
    truth = torch.tensor([2 * (mu - c), 2 * sigma], dtype=torch.float64)
    return EstimateStats(estimator, torch.stack([gm, gs], 1), truth)


def categorical_linear(
    estimator: str, *, logits: tuple[float, ...] = (0.5, -0.3, 0.1, 1.0), rewards: tuple[float, ...] = (11.0, 13.0, 8.0, 10.5),
    samples: int = 8, replicates: int = 4000, tau: float = 0.5, seed: int = 0,
) -> EstimateStats:
    """grad of E_{k ~ softmax(theta)}[r_k] = sum_k p_k r_k w.r.t. theta = p * (r - p.r) (exact)."""
    if estimator not in CATEGORICAL_ESTIMATORS:
        raise ValueError(f"unknown estimator '{estimator}' for the categorical objective (choices: {', '.join(CATEGORICAL_ESTIMATORS)})")
    gen = torch.Generator().manual_seed(seed)
    theta0 = torch.tensor(logits, dtype=torch.float64)
    r = torch.tensor(rewards, dtype=torch.float64)
    theta = theta0.repeat(replicates, 1).requires_grad_(True)  # (R, K)
    if estimator == "gumbel_st":
        y = gumbel_softmax(theta.expand(samples, -1, -1), tau=tau, generator=gen)  # (S, R, K) one-hot
        surrogate = (y @ r).mean(0).sum()
    else:
        probs = torch.softmax(theta, -1).detach()
        k = torch.multinomial(probs, samples, replacement=True, generator=gen).T  # (S, R)
        log_prob = torch.log_softmax(theta, -1).gather(1, k.T).T  # (S, R)
        f = r[k]
        b = leave_one_out_baseline(f) if estimator == "reinforce_baseline" else None
        surrogate = reinforce_surrogate(log_prob, f, baseline=b)
    (g,) = torch.autograd.grad(surrogate, theta)
    p = torch.softmax(theta0, 0)
    return EstimateStats(estimator, g, p * (r - p @ r))
