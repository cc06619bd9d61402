"""How well a score separates in-distribution inputs from out-of-distribution ones.

Problem: an out-of-distribution (OOD) score is only useful through the threshold someone puts
on it, and a single accuracy at one threshold hides how the two sets overlap; papers therefore
report threshold-free numbers, and small differences in how ties are handled change them.
Idea: compute the ROC curve and the precision-recall curves exactly as scikit-learn does
(distinct thresholds, ties counted together, AUROC by the trapezoid rule, average precision as
sum (R_n - R_(n-1)) P_n), and report the four figures of Hendrycks & Gimpel 2017 and
Liang et al. 2018: AUROC, AUPR-in (in-distribution positive), AUPR-out (OOD positive) and the
false-positive rate at 95% true-positive rate (FPR95: the share of OOD inputs still accepted
when 95% of in-distribution inputs are).

Convention: scores are "larger = more out-of-distribution". Written in numpy (float64), so
the tests compare them with scikit-learn's `roc_auc_score`, `average_precision_score` and
`roc_curve` to the last digits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepstrata.errors import UserError


def _as_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise UserError(f"OOD metrics: {name} is empty; score at least one input")
    if not np.isfinite(array).all():
        raise UserError(f"OOD metrics: {name} holds {int((~np.isfinite(array)).sum())} NaN or infinite scores")
    return array


def _binary(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1).astype(bool)
    s = _as_array(scores, "scores")
    if y.shape != s.shape:
        raise UserError(f"OOD metrics: labels {y.shape} and scores {s.shape} must have the same length")
    if y.all() or not y.any():
        raise UserError("OOD metrics need both positives and negatives (in- and out-of-distribution scores)")
    return y, s


def binary_clf_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, thresholds) at each distinct score, highest first.

    Entry i counts the inputs with score >= thresholds[i]; tied scores enter together, so a tie
    is one step of the curves (scikit-learn's `_binary_clf_curve`).
    """
    y, s = _binary(labels, scores)
    order = np.argsort(s, kind="mergesort")[::-1]  # descending, stable
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # the last index of each run of equal scores
    tps = np.cumsum(y)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return fps, tps, s[last_of_tie]


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of every distinct threshold, starting at (0, 0) with threshold +inf.

    Equals `sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)`.
    """
    fps, tps, thresholds = binary_clf_curve(labels, scores)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (trapezoid rule): P(positive scores above negative), ties counting 1/2."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def average_precision(labels: Any, scores: Any) -> float:
    """Area under the precision-recall curve as sum_n (R_n - R_(n-1)) P_n (scikit-learn's definition)."""
    fps, tps, _ = binary_clf_curve(labels, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(labels: Any, scores: Any, tpr: float = 0.95) -> float:
    """The false-positive rate at the first threshold whose true-positive rate reaches `tpr`."""
    if not 0.0 < tpr <= 1.0:
        raise UserError(f"fpr_at_tpr: tpr must be in (0, 1], got {tpr}")
    fpr, tprs, _ = roc_curve(labels, scores)
    return float(fpr[np.argmax(tprs >= tpr)])  # tprs ends at 1.0, so some entry reaches tpr


def ood_labels_and_scores(scores_in: Any, scores_out: Any) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated scores and labels with out-of-distribution = 1 (positive), in = 0."""
    s_in, s_out = _as_array(scores_in, "in-distribution scores"), _as_array(scores_out, "out-of-distribution scores")
    return np.r_[np.zeros(s_in.size, dtype=bool), np.ones(s_out.size, dtype=bool)], np.r_[s_in, s_out]


def ood_metrics(scores_in: Any, scores_out: Any, *, tpr: float = 0.95) -> dict[str, float]:
    """{"auroc", "aupr_in", "aupr_out", "fpr95"} of scores where larger = more out-of-distribution.

    auroc: OOD as the positive class (the same number with in-distribution positive and the
    scores negated). aupr_in: average precision with in-distribution positive, scored by
    -score. aupr_out: OOD positive, scored by score. fpr95: with in-distribution positive
    (accepted when -score >= threshold), the share of OOD inputs accepted at the first threshold
    that accepts `tpr` (95%) of in-distribution inputs (Liang et al. 2018).
    """
    is_out, scores = ood_labels_and_scores(scores_in, scores_out)
    return {
        "auroc": roc_auc(is_out, scores),
        "aupr_in": average_precision(~is_out, -scores),
        "aupr_out": average_precision(is_out, scores),
        "fpr95": fpr_at_tpr(~is_out, -scores, tpr),
    }
