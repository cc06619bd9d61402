"""What every recalibrator shares: fitted on validation logits, applied as a calibration map.

Problem: temperature, vector and Platt scaling, histogram binning and isotonic regression each
turn a classifier's logits into better probabilities, but a user, a tool and a saved run should
not care which one it is.
Idea: each is a `Calibrator`: `fit(logits, labels)` on held-out data (the validation split),
then `calibration_map()` gives the fitted `models.calibrated.CalibrationMap`, an nn.Module from
logits to calibrated logits, which `predict_proba` applies here and `strata calibrate` saves
inside the derived run's model. One map, one set of numbers: what was measured at fitting time
is exactly what the saved model computes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Self

import torch

from deepstrata.errors import UserError
from deepstrata.learned.base import Example, Learned, check_same_length, check_tensor
from deepstrata.models.calibrated import CalibrationMap


class Calibrator(Learned):
    """Base class of recalibrators: subclasses implement `_fit(z64, y)` and `calibration_map()`.

    `preserves_argmax` says whether the map can never change the predicted class (temperature
    scaling: yes; vector scaling and binning: no), so accuracy before and after is equal by
    construction only when it is True.
    """

    fit_call: ClassVar[str] = "fit(logits, labels)"
    preserves_argmax: ClassVar[bool] = False

    def fit(self, logits: torch.Tensor, labels: torch.Tensor) -> Self:
        """Fit on validation `logits` (N, K) and integer `labels` (N,) in [0, K); returns self."""
        z, y = check_logits_labels(f"{type(self).__name__}.fit", logits, labels)
        self.num_classes_ = int(z.shape[1])
        self._fit(z.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.long))
        return self

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def calibration_map(self) -> CalibrationMap:  # pragma: no cover - abstract
        """The fitted map as a module (logits -> calibrated logits), float32, in eval mode."""
        raise NotImplementedError

    def transform(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated logits (N, K): softmax of them is the calibrated probability."""
        z = self.checked_logits(logits, where=f"{type(self).__name__}.transform")
        with torch.no_grad():
            return self.calibration_map().to(z.dtype)(z)

    def checked_logits(self, logits: torch.Tensor, *, where: str) -> torch.Tensor:
        """Fitted, and `logits` float (N, K) with the K classes fitted on; else a UserError."""
        self.check_is_fitted()
        z = check_tensor(logits, where=where, name="logits", shape=f"(N, {self.num_classes_})", ndim=2, dtype="float")
        if z.shape[1] != self.num_classes_:
            raise UserError(f"{where} expected logits of shape (N, {self.num_classes_}) (fitted on {self.num_classes_} classes), got shape {tuple(z.shape)}")
        return z

    def predict_proba(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities (N, K)."""
        return self.transform(logits).softmax(dim=1)


def check_logits_labels(where: str, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation logits (N, K >= 2) and labels (N,) in [0, K), or a UserError naming the mismatch."""
    z = check_tensor(logits, where=where, name="logits", shape="(N, K)", ndim=2, dtype="float")
    y = check_tensor(labels, where=where, name="labels", shape="(N,)", ndim=1, dtype="int")
    check_same_length(where, ("logits", "labels"), z, y)
    k = z.shape[1]
    if k < 2:
        raise UserError(f"{where} expected logits of shape (N, K) with K >= 2 classes, got shape {tuple(z.shape)}")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= k:
        raise UserError(f"{where} expected labels in [0, K) = [0, {k}) for logits of shape {tuple(z.shape)}, got values from {low} to {high}")
    return z, y


def affine_map(weight: torch.Tensor, bias: torch.Tensor) -> CalibrationMap:
    """An affine CalibrationMap z -> z W^T + b holding `weight` (K, K) and `bias` (K,)."""
    m = CalibrationMap(weight.shape[0], "affine", 0, False)
    m.weight.copy_(weight.to(torch.float32))
    m.bias.copy_(bias.to(torch.float32))
    return m.eval()


def table_map(x: torch.Tensor, y: torch.Tensor, *, interpolate: bool) -> CalibrationMap:
    """A per-class table CalibrationMap with knots `x` (K, M) increasing per row and values `y` (K, M)."""
    m = CalibrationMap(x.shape[0], "table", x.shape[1], interpolate)
    m.x.copy_(x.to(torch.float32))
    m.y.copy_(y.to(torch.float32))
    return m.eval()


def minimise_nll(params: list[torch.Tensor], logits_of: Callable[[], torch.Tensor], labels: torch.Tensor, *, max_iter: int = 500) -> float:
    """L-BFGS with a strong-Wolfe line search on the mean cross-entropy; deterministic in float64."""
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_of(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(logits_of(), labels))


def overconfident_example(generator: torch.Generator, k: int = 5, *, scale: float = 4.0, n: int = 200) -> Example:
    """An overconfident k-class problem (informative logits x `scale`) and the usual invalid inputs."""
    labels = torch.randint(0, k, (n,), generator=generator)
    logits = torch.randn(n, k, generator=generator)
    logits[torch.arange(n), labels] += 1.0
    logits = scale * logits
    return Example(
        fit_args=(logits, labels),
        method="predict_proba",
        inputs=(logits[:20],),
        invalid_fit_args=(
            (logits[:, :, None], labels),
            (logits.long(), labels),
            (logits, labels.float()),
            (logits, labels[:-1]),
            (logits, labels + k),
            (logits.numpy(), labels),
        ),
        invalid_inputs=((logits[0],), (logits[:, :1],), (logits.long(),)),
    )
