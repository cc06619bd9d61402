"""Frechet distance against closed forms, and the energy distance's basic properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstrata.metrics.energy_distance import energy_distance
from deepstrata.metrics.frechet import frechet_distance, frechet_from_features


def test_frechet_distance_closed_forms() -> None:
    # Diagonal covariances: ||mu1 - mu2||² + Σ (s1 - s2)².
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    s1, s2 = np.array([1.0, 3.0]), np.array([2.0, 0.5])
    expected = 8.0 + (1 - 2) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(expected)
    # Same Gaussian, any full covariance: 0.
    a = np.random.default_rng(0).normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    assert frechet_distance(mu1[:1].repeat(3), cov, mu1[:1].repeat(3), cov) == pytest.approx(0.0, abs=1e-8)


def test_frechet_from_samples_converges_to_the_population_value() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(20_000, 2))
    b = rng.normal([1.0, 0.0], [1.0, 2.0], size=(20_000, 2))
    assert frechet_from_features(a, b) == pytest.approx(1.0 + 1.0, abs=0.1)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_from_features(a[:1], b)


def test_energy_distance_is_zero_for_equal_samples_and_grows_with_a_shift() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 2, generator=gen)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    near, far = energy_distance(x, x + 0.1), energy_distance(x, x + 1.0)
    assert 0 < near < far
    with pytest.raises(ValueError, match="energy_distance"):
        energy_distance(x, torch.randn(5, 3))


def test_matches_the_scipy_matrix_square_root_on_well_conditioned_covariances() -> None:
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    c1, c2 = a @ a.T + 0.5 * np.eye(4), b @ b.T + 0.5 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
    singular = np.diag([1.0, 0.0, 2.0, 0.0])  # dead features: no warning, still exact
    assert frechet_distance(mu1, singular, mu1, singular) == pytest.approx(0.0, abs=1e-9)
