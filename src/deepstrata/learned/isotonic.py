"""Isotonic regression: the best monotone map from a class's probability to its frequency.

Problem: histogram binning fixes any distortion but its fixed bins waste data where predictions
are sparse and lose ranking inside a bin. Idea: fit, class by class (one against the rest), the
non-decreasing function of p_k closest in squared error to the indicator [y == k] (pool adjacent
violators; Zadrozny & Elkan 2002), then renormalise the K values to sum to one. scikit-learn's
`IsotonicRegression` does the fit; its knots (X_thresholds_, y_thresholds_) are stored, and the
map interpolates linearly between them as scikit-learn's `predict` does, clipping outside.
"""

from __future__ import annotations

import torch

from deepstrata.learned.base import Example
from deepstrata.learned.calibrator import Calibrator, overconfident_example, table_map
from deepstrata.registry import register_learned


@register_learned("isotonic", calibrator="isotonic")
class IsotonicCalibrator(Calibrator):
    """Per class k, scikit-learn's IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip") of [y == k] on p_k.

    Classes end with different numbers of knots; shorter rows are padded by repeating their last
    knot, which leaves the map unchanged.

    Fitted attributes:
        knots_x_: (K, M) float64, knots_y_: (K, M) float64, num_classes_: K.
    """

    def __init__(self) -> None:
        pass

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        import numpy as np
        from sklearn.isotonic import IsotonicRegression

        p = logits.softmax(dim=1).numpy()
        y = labels.numpy()
        rows = []
        for k in range(p.shape[1]):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], (y == k).astype(np.float64))
            rows.append((np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)))
        m = max(2, max(len(x) for x, _ in rows))
        xs = np.stack([np.concatenate([x, np.full(m - len(x), x[-1])]) for x, _ in rows])
        ys = np.stack([np.concatenate([v, np.full(m - len(v), v[-1])]) for _, v in rows])
        self.knots_x_ = torch.from_numpy(xs)
        self.knots_y_ = torch.from_numpy(ys)

    def calibration_map(self):  # noqa: ANN201 - CalibrationMap
        self.check_is_fitted()
        return table_map(self.knots_x_, self.knots_y_, interpolate=True)

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        return overconfident_example(generator)
