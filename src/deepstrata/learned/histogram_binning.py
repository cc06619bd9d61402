"""Histogram binning: replace each class's probability by the accuracy of its bin.

Problem: a parametric map (a temperature, an affine scale) cannot fix miscalibration whose shape
is not a scaling. Idea: split [0, 1] into equal-width bins and, class by class (one against the
rest), map a probability to the fraction of validation samples in its bin that truly belong to
the class (Zadrozny & Elkan 2001); the K mapped values are then renormalised to sum to one. It
is non-parametric and calibrates any monotone or non-monotone distortion given enough data per
bin, but its outputs take only n_bins values per class, so it loses ranking within a bin and
may change the predicted class.
"""

from __future__ import annotations

import torch

from deepstrata.learned.base import Example
from deepstrata.learned.calibrator import Calibrator, overconfident_example, table_map
from deepstrata.registry import register_learned


@register_learned("histogram_binning", calibrator="histogram")
class HistogramBinning(Calibrator):
    """Per class k: bin b = [b/B, (b+1)/B) of p_k maps to the share of validation samples in b with y == k.

    An empty bin keeps its centre (no evidence: no change). A probability of exactly 1 belongs to
    the top bin.

    Args:
        n_bins: B, equal-width bins per class.

    Fitted attributes:
        edges_: lower bin edges (B,) float64. values_: (K, B) float64, the mapped value per class and bin.
        counts_: (K, B) validation samples per bin (the same for every class: each sees all N).
        num_classes_: K.
    """

    def __init__(self, *, n_bins: int = 15) -> None:
        self.n_bins = n_bins

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        from deepstrata.errors import UserError

        if self.n_bins < 1:
            raise UserError(f"HistogramBinning needs n_bins >= 1, got n_bins={self.n_bins}")
        p = logits.softmax(dim=1)
        k, b = p.shape[1], self.n_bins
        edges = torch.linspace(0, 1, b + 1, dtype=torch.float64)[:-1]
        index = (torch.searchsorted(edges, p.T.contiguous(), right=True) - 1).clamp(0, b - 1)  # (K, N)
        hits = torch.nn.functional.one_hot(labels, k).to(torch.float64).T  # (K, N)
        counts = torch.zeros(k, b, dtype=torch.float64).scatter_add_(1, index, torch.ones_like(hits))
        positives = torch.zeros(k, b, dtype=torch.float64).scatter_add_(1, index, hits)
        centres = (edges + 0.5 / b).expand(k, -1)
        self.edges_ = edges
        self.values_ = torch.where(counts > 0, positives / counts.clamp_min(1), centres)
        self.counts_ = counts

    def calibration_map(self):  # noqa: ANN201 - CalibrationMap
        self.check_is_fitted()
        return table_map(self.edges_.expand(self.num_classes_, -1), self.values_, interpolate=False)

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        return overconfident_example(generator)
