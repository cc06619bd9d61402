"""Class-conditional Gaussians with a tied covariance: the Mahalanobis out-of-distribution score.

Problem: a classifier's softmax is confident on inputs unlike anything it was trained on, so its
confidence cannot flag them. Idea: fit one Gaussian per class to the network's features, with
means per class and one shared covariance, and score a new input by its squared Mahalanobis
distance to the closest class mean; inputs far from every class are out of distribution
(Lee et al. 2018, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks").
"""

from __future__ import annotations

from typing import Self

import torch

from deepstrata.errors import UserError
from deepstrata.learned.base import Example, Learned, check_same_length, check_tensor
from deepstrata.registry import register_learned


@register_learned("class_gaussian")
class ClassConditionalGaussian(Learned):
    """Per-class feature means and one tied covariance; `mahalanobis` is the OOD score of Lee et al. 2018.

    The covariance is the maximum-likelihood estimate shared by all classes,
    Sigma = (1/N) sum_c sum_{i in c} (x_i - mu_c)(x_i - mu_c)^T, as in the paper and in
    scikit-learn's LinearDiscriminantAnalysis. Distances use the precision
    (Sigma + eps * mean(diag Sigma) * I)^-1: the ridge is relative to the features' scale, so the
    same `eps` stabilises features of any magnitude (it falls back to `eps` itself when every
    feature is constant). Fitting runs in float64 on the CPU and is deterministic.

    Args:
        eps: relative ridge added to the covariance's diagonal before inversion (>= 0).

    Fitted attributes:
        classes_: the distinct labels, sorted (list of int); row c of `means_` belongs to classes_[c].
        means_: class means, (C, D) float64.
        covariance_: the tied maximum-likelihood covariance, (D, D) float64, without the ridge.
        precision_: inverse of the ridged covariance, (D, D) float64.
    """

    fit_call = "fit(features, labels)"

    def __init__(self, *, eps: float = 1e-6) -> None:
        self.eps = eps

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> Self:
        """Fit on `features` (N, D) and integer `labels` (N,); returns self."""
        where = f"{type(self).__name__}.fit"
        if not self.eps >= 0:
            raise UserError(f"{type(self).__name__} needs eps >= 0, got eps={self.eps}")
        x = check_tensor(features, where=where, name="features", shape="(N, D)", ndim=2, dtype="float")
        y = check_tensor(labels, where=where, name="labels", shape="(N,)", ndim=1, dtype="int")
        check_same_length(where, ("features", "labels"), x, y)

        x = x.detach().to("cpu", torch.float64)
        classes, index = torch.unique(y.detach().cpu(), sorted=True, return_inverse=True)
        counts = torch.bincount(index, minlength=len(classes)).to(torch.float64)  # (C,)
        means = torch.zeros(len(classes), x.shape[1], dtype=torch.float64).index_add_(0, index, x) / counts[:, None]
        centred = x - means[index]  # (N, D): each row minus its own class mean
        covariance = centred.T @ centred / x.shape[0]  # (D, D)

        scale = float(covariance.diagonal().mean())
        ridge = self.eps * (scale if scale > 0 else 1.0)
        eye = torch.eye(x.shape[1], dtype=torch.float64)
        cholesky, info = torch.linalg.cholesky_ex(covariance + ridge * eye)
        if int(info) != 0:
            raise UserError(
                f"{where}: the tied covariance of features {tuple(x.shape)} is singular with eps={self.eps}; "
                "pass a larger eps (e.g. ClassConditionalGaussian(eps=1e-3))"
            )

        self.classes_ = [int(c) for c in classes]
        self.means_ = means
        self.covariance_ = covariance
        self.precision_ = torch.cholesky_inverse(cholesky)
        return self

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of each row of `features` (N, D) to each class mean: (N, C)."""
        self.check_is_fitted()
        where = f"{type(self).__name__}.distances"
        dim = self.means_.shape[1]
        x = check_tensor(features, where=where, name="features", shape=f"(N, {dim})", ndim=2, dtype="float")
        if x.shape[1] != dim:
            raise UserError(
                f"{where} expected features of shape (N, {dim}) (fitted on {dim} features), got shape {tuple(x.shape)}"
            )
        x64 = x.detach().to(torch.float64)
        precision, means = self.precision_.to(x64.device), self.means_.to(x64.device)
        # (x - mu)^T P (x - mu) = x^T P x - 2 x^T P mu + mu^T P mu, without an (N, C, D) difference.
        xp = x64 @ precision  # (N, D)
        d = (xp * x64).sum(1, keepdim=True) - 2 * xp @ means.T + ((means @ precision) * means).sum(1)  # (N, C)
        return d.clamp_min(0).to(x.dtype)

    def mahalanobis(self, features: torch.Tensor) -> torch.Tensor:
        """The OOD score: min over classes of the squared Mahalanobis distance, (N,). Larger = stranger."""
        return self.distances(features).min(dim=1).values

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        """Three well-separated classes in 4 dimensions with correlated noise."""
        n, dim, num_classes = 120, 4, 3
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        centres = 3.0 * torch.randn(num_classes, dim, generator=generator)
        mixing = torch.randn(dim, dim, generator=generator)
        features = centres[labels] + torch.randn(n, dim, generator=generator) @ mixing
        return Example(
            fit_args=(features, labels),
            method="mahalanobis",
            inputs=(features[:20],),
            invalid_fit_args=(
                (features[:, :, None], labels),  # (N, D, 1)
                (features.long(), labels),  # integer features
                (features, labels.float()),  # float labels
                (features, labels[:-1]),  # N mismatch
                (features.tolist(), labels),  # not a tensor
            ),
            invalid_inputs=((features[0],), (features[:, :3],), (features.long(),)),
        )
