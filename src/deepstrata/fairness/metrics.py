"""Group fairness measures of a binary classifier's decisions, with bootstrap intervals.

Problem: "is the model fair to women?" has several precise answers: does it select both groups
equally often (demographic parity), does it find the qualified in both equally often (equal
opportunity), are both its error rates equal (equalised odds), are its confidences equally
honest. Each is a number per group and a gap between groups, and each gap measured on a few
thousand rows is uncertain.
Idea: everything comes from one table of counts, groups x true label x decision (G, 2, 2).
From it: per group the count, selection rate P(yhat=1 | g), TPR P(yhat=1 | y=1, g), FPR
P(yhat=1 | y=0, g), precision P(y=1 | yhat=1, g), accuracy; and the gaps as fairlearn defines
them (`fairlearn.metrics`, method "between_groups"):
- demographic parity difference: max_g - min_g of the selection rate; ratio: min / max;
- equal opportunity difference: max_g - min_g of the TPR;
- equalised odds difference: the larger of the TPR and the FPR differences ("worst_case").
A rate with an empty denominator (a group with no positives) is NaN. The positive class is
label 1. Bootstrap intervals resample the rows with replacement B times from a seeded
generator (Efron's percentile interval); every replicate is one `bincount` of the same cells,
so B = 1000 on Adult's 16,281 test rows takes well under a second. ECE by group is the
project's top-label ECE (metrics/calibration.py, equal to torchmetrics) on the group's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepstrata.errors import UserError

GAPS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "equal_opportunity_difference")
RATES = ("selection_rate", "tpr", "fpr", "precision", "accuracy")


@dataclass(frozen=True)
class Encoded:
    """Rows as integer cells: group index per row (N,), the group names, labels and decisions in {0, 1}."""

    group_index: np.ndarray
    names: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def cells(self) -> np.ndarray:
        """group * 4 + y_true * 2 + y_pred: the (G, 2, 2) count table's flat index of each row."""
        return self.group_index * 4 + self.y_true * 2 + self.y_pred


def encode(y_true: Any, y_pred: Any, groups: Any) -> Encoded:
    """Check and encode the arrays; groups are any labels (strings), sorted by name as fairlearn sorts them."""
    yt, yp, g = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), np.asarray(groups).ravel()
    if not len(yt) == len(yp) == len(g):
        raise UserError(f"fairness: {len(yt)} labels, {len(yp)} decisions and {len(g)} group values; give one of each per row")
    if len(yt) == 0:
        raise UserError("fairness: no rows to measure")
    for name, values in (("labels", yt), ("decisions", yp)):
        bad = set(np.unique(values).tolist()) - {0, 1}
        if bad:
            raise UserError(f"fairness: the {name} must be 0 or 1 (a binary classifier, positive class 1); found {sorted(bad)[:5]}")
    names, index = np.unique(g.astype(str), return_inverse=True)
    return Encoded(index.astype(np.int64), [str(n) for n in names], yt.astype(np.int64), yp.astype(np.int64))


def counts(enc: Encoded, rows: np.ndarray | None = None) -> np.ndarray:
    """The (G, 2, 2) table [group, y_true, y_pred] of the rows (all rows, or the index array `rows` (B, N) per replicate)."""
    g = len(enc.names)
    cells = enc.cells
    if rows is None:
        return np.bincount(cells, minlength=g * 4).reshape(g, 2, 2).astype(np.float64)
    b = rows.shape[0]
    flat = (cells[rows] + (np.arange(b) * g * 4)[:, None]).ravel()
    return np.bincount(flat, minlength=b * g * 4).reshape(b, g, 2, 2).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def rates(table: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from counts (..., G, 2, 2); each value has shape (..., G)."""
    tn, fp, fn, tp = table[..., 0, 0], table[..., 0, 1], table[..., 1, 0], table[..., 1, 1]
    n = tn + fp + fn + tp
    return {
        "count": n,
        "selection_rate": _ratio(fp + tp, n),
        "tpr": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "precision": _ratio(tp, tp + fp),
        "accuracy": _ratio(tp + tn, n),
        "base_rate": _ratio(tp + fn, n),
    }


def gaps_from_counts(table: np.ndarray) -> dict[str, np.ndarray]:
    """The four gap measures (fairlearn's "between_groups") from counts (..., G, 2, 2)."""
    r = rates(table)

    def spread(v: np.ndarray) -> np.ndarray:
        return np.max(v, axis=-1) - np.min(v, axis=-1)

    sel = r["selection_rate"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.min(sel, axis=-1) / np.max(sel, axis=-1)
    tpr_gap, fpr_gap = spread(r["tpr"]), spread(r["fpr"])
    return {
        "demographic_parity_difference": spread(sel),
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": np.maximum(tpr_gap, fpr_gap),
        "equal_opportunity_difference": tpr_gap,
    }


def gaps(y_true: Any, y_pred: Any, groups: Any) -> dict[str, float]:
    """Demographic parity difference and ratio, equalised odds and equal opportunity differences."""
    return {k: float(v) for k, v in gaps_from_counts(counts(encode(y_true, y_pred, groups))).items()}


def bootstrap_gaps(y_true: Any, y_pred: Any, groups: Any, *, draws: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval (low, high) of each gap: rows resampled with replacement `draws` times.

    A replicate in which a group is absent (or has no positives) gives a NaN gap; those are
    left out of that measure's percentiles (with Adult's group sizes they do not occur).
    """
    if draws < 1:
        raise UserError(f"fairness: the bootstrap needs at least 1 draw, got {draws}")
    if not 0 < level < 1:
        raise UserError(f"fairness: the interval's level must be in (0, 1), got {level}")
    enc = encode(y_true, y_pred, groups)
    rng = np.random.default_rng(seed)
    n = len(enc.y_true)
    out: dict[str, list[np.ndarray]] = {k: [] for k in GAPS}
    chunk = max(1, 4_000_000 // n)  # replicates per bincount, to bound memory
    for start in range(0, draws, chunk):
        rows = rng.integers(0, n, size=(min(chunk, draws - start), n))
        for k, v in gaps_from_counts(counts(enc, rows)).items():
            out[k].append(v)
    tail = (1 - level) / 2 * 100
    result = {}
    for k, parts in out.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        result[k] = (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))) if len(values) else (float("nan"), float("nan"))
    return result


def group_table(y_true: Any, y_pred: Any, groups: Any, *, probs: Any = None, n_bins: int = 15) -> list[dict[str, Any]]:
    """One row per group (sorted by name): count, base rate, selection rate, TPR, FPR, precision, accuracy, and ECE when `probs` (N, K) are given."""
    enc = encode(y_true, y_pred, groups)
    r = rates(counts(enc))
    rows = []
    for i, name in enumerate(enc.names):
        row: dict[str, Any] = {"group": name, "count": int(r["count"][i])}
        row.update({k: float(r[k][i]) for k in ("base_rate", *RATES)})
        if probs is not None:
            row["ece"] = group_ece(probs, enc.y_true, enc.group_index == i, n_bins=n_bins)
        rows.append(row)
    return rows


def group_ece(probs: Any, y_true: Any, mask: np.ndarray, *, n_bins: int = 15) -> float:
    """Top-label ECE (equal-width bins) of the rows where `mask` holds."""
    import torch

    from deepstrata.metrics.calibration import expected_calibration_error

    p = torch.as_tensor(np.asarray(probs)[mask], dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y_true)[mask], dtype=torch.long)
    return expected_calibration_error(p, y, n_bins=n_bins)
