"""A trained classifier followed by a fitted calibration map, saved and loaded as one model.

Problem: a recalibrator fitted after training (a temperature, per-class bins) is useless if
every consumer of the run (predict, evaluate, the report, an exported or served model) has to
know it exists and apply it by hand.
Idea: wrap the classifier and the map in one registered model, `calibrated`, whose output is
the calibrated logits: softmax of the output is the calibrated probability, so everything that
reads logits serves calibrated probabilities unchanged. model.json names the base architecture
with its arguments and the map's size; the map's numbers are buffers in model.safetensors, so
loading runs no code. Two map forms cover the usual recalibrators:

- `affine`: z' = z W^T + b. Temperature scaling is W = I / T (Guo et al. 2017), vector scaling a
  diagonal W, matrix scaling a full one, and Platt scaling (binary) a W that acts on the logit
  difference (Platt 1999).
- `table`: per class k a one-dimensional table (x_k, y_k) of knots applied to p_k = softmax(z)_k,
  by linear interpolation (isotonic regression, Zadrozny & Elkan 2002) or as a step function
  taking the value of the last knot <= p (histogram binning, Zadrozny & Elkan 2001); the mapped
  values are renormalised to sum to one and the output is their log.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from deepstrata.models.base import Backbone
from deepstrata.registry import create, register_model

MapKind = Literal["affine", "table"]
_TINY = 1e-12


class CalibrationMap(nn.Module):
    """Calibrated logits from logits (N, K); the fitted numbers are buffers (saved, never trained)."""

    def __init__(self, num_classes: int, kind: MapKind, knots: int, interpolate: bool):
        super().__init__()
        self.kind, self.interpolate = kind, interpolate
        if kind == "affine":
            self.register_buffer("weight", torch.eye(num_classes))
            self.register_buffer("bias", torch.zeros(num_classes))
        else:
            grid = torch.linspace(0, 1, max(knots, 2)).expand(num_classes, -1).clone()
            self.register_buffer("x", grid)  # (K, M), increasing in each row
            self.register_buffer("y", grid.clone())  # the identity map until fitted

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "affine":
            return logits @ self.weight.T + self.bias
        p = logits.softmax(dim=1)  # (N, K)
        q = self._lookup(p)
        total = q.sum(dim=1, keepdim=True)
        q = torch.where(total > 0, q / total.clamp_min(_TINY), torch.full_like(q, 1.0 / q.shape[1]))
        return q.clamp_min(_TINY).log()

    def _lookup(self, p: torch.Tensor) -> torch.Tensor:
        """Each column k of p through class k's table."""
        x, y = self.x.to(p.dtype), self.y.to(p.dtype)
        m = x.shape[1]
        # index of the last knot <= p, per class: searchsorted over each class's row. ONNX has no
        # searchsorted, so an exported graph counts the knots <= p instead (the same index for
        # increasing rows, at N x K x M memory: fine for a served batch, not for a whole split).
        if torch.compiler.is_exporting():
            idx = (x[None, :, :] <= p[:, :, None]).sum(dim=2) - 1
        else:
            idx = torch.searchsorted(x.contiguous(), p.T.contiguous(), right=True).T - 1  # (N, K) in [-1, M-1]
        lo = idx.clamp(0, m - 1)
        rows = torch.arange(x.shape[0], device=p.device).expand_as(lo)
        x0, y0 = x[rows, lo], y[rows, lo]
        if not self.interpolate:
            return torch.where(idx < 0, y[:, :1].T.expand_as(p), y0)
        hi = (lo + 1).clamp(max=m - 1)
        x1, y1 = x[rows, hi], y[rows, hi]
        span = (x1 - x0).clamp_min(_TINY)
        t = ((p - x0) / span).clamp(0, 1)
        value = y0 + t * (y1 - y0)
        # below the first knot or above the last: the end value (scikit-learn's out_of_bounds="clip")
        return torch.where(idx < 0, y[:, :1].T.expand_as(p), value)


class Calibrated(Backbone):
    """`base` (a registered classifier) then `calibration` (a `CalibrationMap`).

    It keeps the base's Backbone interface: `forward_features`, `feature_stages` and
    `forward_intermediates` are the base's, `forward_head(features)` is the base's head followed
    by the map (`pre_logits=True` gives the base's pooled vector), so tools that read features
    (Mahalanobis, Grad-CAM) see the network they were fitted for.
    """

    def __init__(self, base: nn.Module, calibration: CalibrationMap):
        super().__init__()
        self.base = base
        self.calibration = calibration
        self.feature_format = getattr(base, "feature_format", "NC")

    def forward(self, *inputs: Any) -> torch.Tensor:
        return self.calibration(self.base(*inputs))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return self.base.forward_head(features, pre_logits=True)
        return self.calibration(self.base.forward_head(features))

    def feature_stages(self) -> list[nn.Module]:
        return self.base.feature_stages()

    @property
    def num_features(self) -> int:
        return self.base.num_features

    def reset_head(self, num_classes: int) -> None:
        """A new head is not calibrated: the map becomes the identity for `num_classes` classes."""
        self.base.reset_head(num_classes)
        self.calibration = CalibrationMap(num_classes, "affine", 0, False)


@register_model(
    "calibrated",
    example={
        "input_shape": [1, 8, 8],
        "kwargs": {"base": {"architecture": "small_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}}, "num_classes": 10, "map": "table", "knots": 5},
    },
)
def calibrated(*, base: dict[str, Any], num_classes: int, map: MapKind = "affine", knots: int = 0, interpolate: bool = True) -> Calibrated:
    """A classifier with a fitted calibration map (`strata calibrate` writes these).

    base: {"architecture": registered model name, "kwargs": its arguments} (the parent's model.json).
    map: "affine" (temperature, vector, matrix, Platt scaling) or "table" (isotonic, histogram binning).
    knots: knots per class of a table map; interpolate: linear between knots (False: a step function).
    """
    model = create("model", str(base["architecture"]), **dict(base.get("kwargs", {})))
    return Calibrated(model, CalibrationMap(num_classes, map, knots, interpolate))
