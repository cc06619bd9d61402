"""Per-group decision thresholds (Hardt, Price & Srebro 2016), chosen on held-out predictions.

Problem: a trained binary classifier decides yhat = 1 when its score passes one threshold; if
the scores' distributions differ by group, so do its selection rates and error rates.
Idea: keep the model, give each group g its own threshold tau_g on the logit margin
s = z_1 - z_0 (yhat = 1 iff s > tau_g; tau = 0 is the model's own argmax), chosen on the
validation split for one constraint:
- "demographic_parity": every group selects the same share r of its rows (tau_g is the
  midpoint between the r-quantile's neighbours of group g's margins); r is the one of 201
  values in [0, 1] with the highest validation accuracy;
- "equal_opportunity" / "equalized_odds": every group reaches the same true positive rate t
  (tau_g from the margins of group g's positives); t is the one of 201 values whose validation
  accuracy is highest among those whose validation gap (equal opportunity difference, or
  equalised odds difference) is within `tolerance`; if none is, the one with the smallest gap.
`strength` in [0, 1] moves every threshold from 0 (the model's own) towards the fair one,
tau_g(strength) = strength * tau_g: the trade-off between accuracy and the gap.

Limits, said plainly: these thresholds are deterministic. Hardt et al.'s equalised-odds
solution randomises between two thresholds for some groups to meet TPR and FPR exactly; with
one threshold per group the TPRs are matched and the FPR gap is only kept within tolerance
when it can be (fairlearn's ThresholdOptimizer randomises). The group must be known at
prediction time (here: an input feature), which is disparate treatment by design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepstrata.errors import UserError
from deepstrata.fairness.metrics import gaps

CONSTRAINTS = ("demographic_parity", "equal_opportunity", "equalized_odds")
GRID = np.linspace(0.0, 1.0, 201)


@dataclass
class GroupThresholds:
    """Thresholds on the logit margin, one per group code, and how they were chosen."""

    thresholds: np.ndarray  # (G,) float
    constraint: str
    target: float  # the common selection rate or TPR
    info: dict[str, Any] = field(default_factory=dict)

    def decide(self, margin: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """yhat (N,) in {0, 1}: margin > the row's group threshold."""
        return (np.asarray(margin) > self.thresholds[np.asarray(codes)]).astype(np.int64)


def quantile_threshold(scores: np.ndarray, rate: float) -> float:
    """A threshold tau with the share of scores > tau as close to `rate` as the scores allow."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = len(s)
    if n == 0:
        return 0.0
    k = int(round(rate * n))
    if k <= 0:
        return float(s[0] + 1.0)
    if k >= n:
        return float(s[-1] - 1.0)
    return float((s[k - 1] + s[k]) / 2)


def _thresholds_for(target: float, margin: np.ndarray, y: np.ndarray, codes: np.ndarray, num_groups: int, constraint: str) -> np.ndarray:
    taus = np.zeros(num_groups)
    for g in range(num_groups):
        rows = codes == g
        if constraint != "demographic_parity":
            rows &= y == 1
        taus[g] = quantile_threshold(margin[rows], target) if rows.any() else 0.0
    return taus


def fit_group_thresholds(
    margin: np.ndarray, y: np.ndarray, codes: np.ndarray, *, num_groups: int, constraint: str = "demographic_parity", tolerance: float = 0.02, strength: float = 1.0
) -> GroupThresholds:
    """Choose per-group thresholds on these (validation) margins, labels and group codes."""
    if constraint not in CONSTRAINTS:
        raise UserError(f"fair thresholds: unknown constraint '{constraint}' (choices: {', '.join(CONSTRAINTS)})")
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"fair thresholds: strength must be in [0, 1] (0: the model's own threshold, 1: the full constraint), got {strength}")
    margin, y, codes = np.asarray(margin, np.float64), np.asarray(y, np.int64), np.asarray(codes, np.int64)
    present = np.unique(codes)
    if len(present) < 2:
        raise UserError(f"fair thresholds: the validation rows hold {len(present)} group(s); per-group thresholds need at least two")
    gap_name = {"demographic_parity": "demographic_parity_difference", "equal_opportunity": "equal_opportunity_difference", "equalized_odds": "equalized_odds_difference"}[constraint]
    best: tuple[Any, ...] | None = None
    for target in GRID:
        taus = _thresholds_for(float(target), margin, y, codes, num_groups, constraint)
        pred = (margin > taus[codes]).astype(np.int64)
        acc = float((pred == y).mean())
        gap = gaps(y, pred, codes)[gap_name]
        feasible = gap <= tolerance
        key = (feasible, acc if feasible else -gap, acc)
        if best is None or key > best[0]:
            best = (key, float(target), taus, acc, gap)
    assert best is not None
    _, target, taus, acc, gap = best
    return GroupThresholds(taus * strength, constraint, target, {"val_accuracy_at_full_strength": acc, f"val_{gap_name}_at_full_strength": float(gap)})
