"""Feature standardisation fitted on the training part only.

Problem: features on different scales (a flower's petal width in cm next to a wine's proline
in mg/L) slow gradient descent down, but statistics computed on the whole table leak the
test split into training (Hastie, Tibshirani & Friedman, "The Elements of Statistical
Learning", 2009, section 7.10.2: preprocessing belongs inside the cross-validation loop).
Idea: learn each feature's mean and standard deviation from the training rows, map every
split with those same numbers, and record them so prediction applies the identical map.
"""

from __future__ import annotations

import torch

from deepstrata.errors import DataError


class Standardize:
    """z = (x - mean_) / std_ per feature, scikit-learn's StandardScaler contract.

    `fit(x)` with x: (N, F) learns `mean_` and `std_` (each (F,)); a constant feature gets
    std 1 so it maps to 0 instead of dividing by zero. `transform` keeps shape and dtype.
    """

    def __init__(self, *, eps: float = 1e-12):
        self.eps = eps

    def fit(self, x: torch.Tensor) -> Standardize:
        if x.dim() != 2:
            raise DataError(f"Standardize expects a table of shape (N, features), got {tuple(x.shape)}")
        if len(x) == 0:
            raise DataError("Standardize cannot be fitted on zero rows")
        if not torch.isfinite(x).all():
            raise DataError("Standardize: the training features hold NaN or infinite values; clean or impute them first")
        x64 = x.double()
        self.mean_ = x64.mean(dim=0)
        std = x64.std(dim=0, unbiased=False)
        self.std_ = torch.where(std > self.eps, std, torch.ones_like(std))
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "mean_"):
            raise RuntimeError("Standardize.transform called before fit")
        if x.shape[1:] != self.mean_.shape:
            raise DataError(f"Standardize was fitted on {self.mean_.shape[0]} features, got input of shape {tuple(x.shape)}")
        return ((x.double() - self.mean_) / self.std_).to(x.dtype)

    def fit_transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.fit(x).transform(x)

    def to_spec(self) -> dict[str, list[float]]:
        """The statistics as JSON lists, for `input_spec` (per-feature `mean`/`std`)."""
        return {"mean": [float(v) for v in self.mean_], "std": [float(v) for v in self.std_]}
