"""OOD metrics equal scikit-learn's on random and heavily tied scores, and read the right way round."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from deepstrata.errors import UserError
from deepstrata.metrics.ood import average_precision, fpr_at_tpr, ood_metrics, roc_auc, roc_curve


def _problems() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    problems = []
    for n, ties in [(50, False), (333, False), (200, True), (41, True)]:
        labels = rng.random(n) < 0.4
        labels[:2] = [True, False]  # both classes present
        scores = rng.normal(size=n) + labels
        if ties:
            scores = np.round(scores * 2) / 2  # a handful of distinct values: many ties across classes
        problems.append((labels, scores))
    problems.append((np.array([0, 0, 1, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])))  # all tied
    return problems


@pytest.mark.parametrize(("labels", "scores"), _problems())
def test_equal_to_scikit_learn(labels: np.ndarray, scores: np.ndarray) -> None:
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    fpr, tpr, thr = roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])  # the first is +inf here, max + 1 or inf in scikit-learn
    assert thr[0] == np.inf
    expected = sk_fpr[np.argmax(sk_tpr >= 0.95)]
    assert fpr_at_tpr(labels, scores, 0.95) == pytest.approx(expected, abs=1e-12)


def test_ood_metrics_name_the_conventions() -> None:
    """Larger = more OOD: AUROC with OOD positive, AUPR-in on -score with in positive, FPR95 with in positive."""
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(size=300), rng.normal(1.0, size=200)
    m = ood_metrics(s_in, s_out)
    is_out = np.r_[np.zeros(300), np.ones(200)].astype(bool)
    s = np.r_[s_in, s_out]
    assert m["auroc"] == pytest.approx(roc_auc_score(is_out, s), abs=1e-12)
    assert m["aupr_out"] == pytest.approx(average_precision_score(is_out, s), abs=1e-12)
    assert m["aupr_in"] == pytest.approx(average_precision_score(~is_out, -s), abs=1e-12)
    # FPR95 by its definition: the threshold keeps 95% of in-distribution scores; the OOD share under it.
    threshold = np.sort(s_in)[int(np.ceil(0.95 * 300)) - 1]
    assert m["fpr95"] == pytest.approx(np.mean(s_out <= threshold), abs=1e-12)
    assert 0.7 < m["auroc"] < 0.85  # two unit Gaussians one apart: Phi(1 / sqrt 2) = 0.760


def test_perfect_and_reversed_separation() -> None:
    perfect = ood_metrics([0.0, 0.1, 0.2], [1.0, 2.0])
    assert perfect == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    reversed_ = ood_metrics([1.0, 2.0], [0.0, 0.1, 0.2])
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0


def test_bad_inputs_raise_user_errors() -> None:
    with pytest.raises(UserError, match="empty"):
        ood_metrics([], [1.0])
    with pytest.raises(UserError, match="NaN"):
        ood_metrics([0.0, float("nan")], [1.0])
    with pytest.raises(UserError, match="both positives and negatives"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(UserError, match="tpr must be"):
        fpr_at_tpr([0, 1], [0.2, 0.3], 1.5)
