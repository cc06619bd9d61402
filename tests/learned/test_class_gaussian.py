"""Class-conditional Gaussians: moments equal scikit-learn's, distances equal scipy's Mahalanobis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned import NotFittedError
from deepstrata.learned.class_gaussian import ClassConditionalGaussian


def _features(
    n: int = 300, dim: int = 5, classes: tuple[int, ...] = (0, 1, 2), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, len(classes), (n,), generator=g)
    centres = 4.0 * torch.randn(len(classes), dim, generator=g)
    mixing = torch.randn(dim, dim, generator=g)
    features = centres[index] + torch.randn(n, dim, generator=g) @ mixing
    return features, torch.tensor(classes)[index]


def test_means_and_tied_covariance_equal_scikit_learn() -> None:
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = _features(classes=(2, 5, 9))
    model = ClassConditionalGaussian().fit(x, y)
    xn, yn = x.double().numpy(), y.numpy()
    lda = LinearDiscriminantAnalysis(solver="lsqr", store_covariance=True).fit(xn, yn)
    assert model.classes_ == [2, 5, 9] == lda.classes_.tolist()
    np.testing.assert_allclose(model.means_.numpy(), lda.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.covariance_.numpy(), lda.covariance_, rtol=1e-10, atol=1e-12)

    rows = np.searchsorted(lda.classes_, yn)
    centred = xn - lda.means_[rows]
    empirical = EmpiricalCovariance().fit(centred).covariance_
    np.testing.assert_allclose(model.covariance_.numpy(), empirical, rtol=1e-10, atol=1e-12)


def test_distances_equal_scipy_mahalanobis() -> None:
    from scipy.spatial.distance import mahalanobis

    x, y = _features(seed=1)
    model = ClassConditionalGaussian(eps=1e-3).fit(x, y)
    cov = model.covariance_.numpy()
    vi = np.linalg.inv(cov + 1e-3 * np.mean(np.diag(cov)) * np.eye(cov.shape[0]))  # the documented ridge
    np.testing.assert_allclose(model.precision_.numpy(), vi, rtol=1e-9, atol=1e-12)

    probe = torch.cat([x[:4], x[:3] + 10.0]).double()  # training rows and rows shifted away
    got = model.distances(probe).numpy()  # (7, C)
    means = model.means_.numpy()
    expected = np.array([[mahalanobis(u, m, vi) ** 2 for m in means] for u in probe.numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    np.testing.assert_allclose(model.mahalanobis(probe).numpy(), expected.min(1), rtol=1e-9)


def test_out_of_distribution_points_score_higher() -> None:
    """The OOD claim measured: shifted inputs score above almost every in-distribution input."""
    x, y = _features(n=600, seed=2)
    model = ClassConditionalGaussian().fit(x[:400], y[:400])
    inside = model.mahalanobis(x[400:])
    outside = model.mahalanobis(x[400:] + 8.0 * torch.randn(200, 5, generator=torch.Generator().manual_seed(3)))
    auroc = (outside[:, None] > inside[None, :]).double().mean()
    assert auroc > 0.95
    assert inside.dtype == torch.float32 and inside.shape == (200,)


def test_the_relative_ridge_makes_scores_scale_invariant() -> None:
    x, y = _features(seed=4)
    x = x.double()  # scaling float32 by 1e4 would round the features themselves
    small = ClassConditionalGaussian(eps=1e-2).fit(x, y).mahalanobis(x)
    large = ClassConditionalGaussian(eps=1e-2).fit(1e4 * x, y).mahalanobis(1e4 * x)
    torch.testing.assert_close(small, large, rtol=1e-8, atol=1e-10)


def test_a_singular_covariance_without_ridge_is_a_user_error() -> None:
    x, y = _features(n=50, seed=5)
    collinear = torch.cat([x, x[:, :1]], dim=1)  # a repeated column: the covariance has rank D - 1
    with pytest.raises(UserError, match=r"singular with eps=0.0; pass a larger eps"):
        ClassConditionalGaussian(eps=0.0).fit(collinear, y)
    ClassConditionalGaussian().fit(collinear, y)  # the default ridge handles it


def test_not_fitted_and_shape_errors() -> None:
    x, y = _features(n=40)
    not_fitted = r"^ClassConditionalGaussian is not fitted yet; call fit\(features, labels\) first$"
    with pytest.raises(NotFittedError, match=not_fitted):
        ClassConditionalGaussian().mahalanobis(x)
    model = ClassConditionalGaussian().fit(x, y)
    wrong_dim = r"distances expected features of shape \(N, 5\) \(fitted on 5 features\), got shape \(40, 4\)"
    with pytest.raises(UserError, match=wrong_dim):
        model.mahalanobis(x[:, :4])
    wrong_labels = r"fit expected labels as an integer tensor of shape \(N,\), got shape \(40, 1\)"
    with pytest.raises(UserError, match=wrong_labels):
        ClassConditionalGaussian().fit(x, y[:, None])
    with pytest.raises(UserError, match="eps >= 0"):
        ClassConditionalGaussian(eps=-1.0).fit(x, y)
