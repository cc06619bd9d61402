"""Temperature scaling: one scalar that makes a trained classifier's confidences honest.

Problem: modern networks are overconfident; their softmax says 0.99 on inputs they get right far
less often than 99% of the time. Idea: divide the logits by one temperature T > 0 fitted on
held-out data by minimising the negative log-likelihood; T > 1 softens every prediction, and the
argmax, hence accuracy, never changes (Guo et al. 2017, "On Calibration of Modern Neural Networks").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Self

import torch
import torch.nn.functional as F

from deepstrata.errors import UserError
from deepstrata.learned.base import Example
from deepstrata.learned.calibrator import Calibrator, affine_map, check_logits_labels, overconfident_example
from deepstrata.registry import register_learned

_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0  # 1 / golden ratio


@register_learned("temperature_scaling", calibrator="temperature")
class TemperatureScaler(Calibrator):
    """Temperature scaling (Guo et al. 2017): logits / T with T fitted by NLL on validation data.

    The fit is a golden-section search on log T over [min_temperature, max_temperature]. The NLL
    is convex in 1/T (a log-sum-exp of functions linear in 1/T minus a linear term), so it is
    unimodal in log T and a bracketed search finds its global minimum with no gradients, step
    sizes or randomness: the same data always gives the same T to the last bit. When the
    validation set is perfectly separated the NLL keeps falling as T -> 0: the fit ends at
    `min_temperature`, or at the largest T where the NLL is 0.0 in float64 if that comes first.
    A flat NLL (constant logits) gives T = 1.

    Args:
        min_temperature: lower end of the search bracket (> 0).
        max_temperature: upper end of the search bracket (> min_temperature).
        tol: width of the final bracket in log T, i.e. the relative precision of T.

    Fitted attributes:
        temperature_: the fitted T (float).
        nll_: mean negative log-likelihood of the validation set at T (float).
        num_classes_: K, the number of logits per sample (int).
    """

    fit_call = "fit(logits, labels)"
    preserves_argmax = True

    def __init__(self, *, min_temperature: float = 0.01, max_temperature: float = 100.0, tol: float = 1e-7) -> None:
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature
        self.tol = tol

    def fit(self, logits: torch.Tensor, labels: torch.Tensor) -> Self:
        """Fit T on validation `logits` (N, K) and integer `labels` (N,) in [0, K); returns self."""
        where = f"{type(self).__name__}.fit"
        if not 0 < self.min_temperature < self.max_temperature:
            raise UserError(
                f"{type(self).__name__} needs 0 < min_temperature < max_temperature, got "
                f"min_temperature={self.min_temperature}, max_temperature={self.max_temperature}"
            )
        if not self.tol > 0:
            raise UserError(f"{type(self).__name__} needs tol > 0, got tol={self.tol}")
        z, y = check_logits_labels(where, logits, labels)
        num_classes = z.shape[1]

        # float64 on the CPU: the search compares NLLs that differ in the 8th digit near the optimum.
        z64 = z.detach().to("cpu", torch.float64)
        y64 = y.detach().to("cpu", torch.long)

        def nll(log_t: float) -> float:
            return float(F.cross_entropy(z64 / math.exp(log_t), y64))

        bracket = math.log(self.min_temperature), math.log(self.max_temperature)
        log_t = _golden_section(nll, *bracket, tol=self.tol, prefer=0.0)
        self.temperature_ = math.exp(log_t)
        self.nll_ = nll(log_t)
        self.num_classes_ = num_classes
        return self

    def transform(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated logits: `logits / T`, shape (N, K) as given (differentiable, same dtype)."""
        z = self.checked_logits(logits, where=f"{type(self).__name__}.transform")
        return z / self.temperature_

    def predict_proba(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities softmax(logits / T), shape (N, K)."""
        return self.transform(logits).softmax(dim=1)

    def calibration_map(self):  # noqa: ANN201 - CalibrationMap
        """The affine map z -> z / T, for a saved calibrated model."""
        self.check_is_fitted()
        k = self.num_classes_
        return affine_map(torch.eye(k, dtype=torch.float64) / self.temperature_, torch.zeros(k, dtype=torch.float64))

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        """An overconfident 5-class problem: informative logits multiplied by 4."""
        return overconfident_example(generator)


def _golden_section(f: Callable[[float], float], a: float, b: float, *, tol: float, prefer: float) -> float:
    """The minimiser of a unimodal `f` on [a, b], to within `tol` (Kiefer 1953).

    On an exact tie f(c) == f(d) the minimum lies in [c, d], inside both candidate brackets; the
    search keeps the one nearer `prefer`, so a flat `f` (constant logits) returns `prefer`
    (T = 1, the identity) instead of drifting to an end of the bracket.
    """
    c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd or (fc == fd and prefer < (c + d) / 2):  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - _INV_PHI * (b - a)
            fc = f(c)
        else:  # the minimum lies in [c, b]
            a, c, fc = c, d, fd
            d = a + _INV_PHI * (b - a)
            fd = f(d)
    return (a + b) / 2
