"""Every fairness number equals fairlearn's on the same predictions; the bootstrap is a seeded percentile interval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score
from torchmetrics.functional.classification import multiclass_calibration_error

from deepstrata.errors import UserError
from deepstrata.fairness.metrics import bootstrap_gaps, gaps, group_table


def predictions(n: int, groups: list[str], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, decisions, probabilities (N, 2) and group names with group-dependent rates."""
    rng = np.random.default_rng(seed)
    g = rng.choice(groups, size=n, p=np.linspace(1, 2, len(groups)) / np.linspace(1, 2, len(groups)).sum())
    shift = {name: i / len(groups) for i, name in enumerate(groups)}
    p1 = np.clip(rng.beta(2, 4, size=n) + np.array([shift[v] for v in g]) * 0.4, 0.001, 0.999)
    y = (rng.random(n) < p1).astype(np.int64)
    yhat = (p1 > 0.5).astype(np.int64)
    return y, yhat, np.stack([1 - p1, p1], axis=1), g


@pytest.mark.parametrize("groups", [["Female", "Male"], ["Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"]])
def test_every_number_equals_fairlearn(groups: list[str]) -> None:
    y, yhat, probs, g = predictions(3000, groups, seed=len(groups))
    frame = MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": lambda a, b: precision_score(a, b, zero_division=0),
            "accuracy": accuracy_score,
        },
        y_true=y,
        y_pred=yhat,
        sensitive_features=g,
    )
    ours = group_table(y, yhat, g, probs=probs)
    assert [r["group"] for r in ours] == list(frame.by_group.index)
    for row in ours:
        theirs = frame.by_group.loc[row["group"]]
        for key in ("count", "selection_rate", "tpr", "fpr", "precision", "accuracy"):
            assert row[key] == pytest.approx(float(theirs[key]), abs=1e-12), (row["group"], key)
        mask = g == row["group"]
        reference = multiclass_calibration_error(torch.as_tensor(probs[mask]), torch.as_tensor(y[mask]), num_classes=2, n_bins=15, norm="l1")
        assert row["ece"] == pytest.approx(float(reference), abs=1e-6)
    measured = gaps(y, yhat, g)
    assert measured["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, yhat, sensitive_features=g), abs=1e-12)
    assert measured["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y, yhat, sensitive_features=g), abs=1e-12)
    assert measured["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, yhat, sensitive_features=g), abs=1e-12)
    assert measured["equal_opportunity_difference"] == pytest.approx(equal_opportunity_difference(y, yhat, sensitive_features=g), abs=1e-12)
    assert measured["demographic_parity_difference"] > 0.05  # the data was made unequal: a real gap is compared


def test_bootstrap_is_a_seeded_percentile_interval_around_the_estimate() -> None:
    y, yhat, _, g = predictions(2000, ["a", "b"], seed=0)
    ci = bootstrap_gaps(y, yhat, g, draws=400, seed=3)
    assert ci == bootstrap_gaps(y, yhat, g, draws=400, seed=3)
    assert ci != bootstrap_gaps(y, yhat, g, draws=400, seed=4)
    point = gaps(y, yhat, g)
    for key, (low, high) in ci.items():
        assert low < point[key] < high, key
    # the definition written out: resample rows, recompute with fairlearn, take the percentiles
    rng = np.random.default_rng(3)
    n = len(y)
    rows = rng.integers(0, n, size=(400, n))
    by_hand = [demographic_parity_difference(y[r], yhat[r], sensitive_features=g[r]) for r in rows[:50]]
    ours = [gaps(y[r], yhat[r], g[r])["demographic_parity_difference"] for r in rows[:50]]
    np.testing.assert_allclose(ours, by_hand, atol=1e-12)
    low, high = np.percentile([gaps(y[r], yhat[r], g[r])["demographic_parity_difference"] for r in rows], [2.5, 97.5])
    assert ci["demographic_parity_difference"] == pytest.approx((low, high), abs=1e-12)
    # a wider interval from fewer rows: the interval measures the sampling noise
    small = bootstrap_gaps(y[:200], yhat[:200], g[:200], draws=400, seed=3)["demographic_parity_difference"]
    assert small[1] - small[0] > ci["demographic_parity_difference"][1] - ci["demographic_parity_difference"][0]


def test_non_binary_decisions_and_mismatched_lengths_are_refused() -> None:
    with pytest.raises(UserError, match="must be 0 or 1"):
        gaps([0, 1, 2], [0, 1, 1], ["a", "b", "a"])
    with pytest.raises(UserError, match="3 labels, 2 decisions"):
        gaps([0, 1, 1], [0, 1], ["a", "b", "a"])
