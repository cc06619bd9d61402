"""Kamiran-Calders weights make the group and the label exactly independent in the weighted data."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.fairness.reweighing import reweighing_weights


def test_weighted_group_and_label_are_independent_with_the_marginals_kept() -> None:
    rng = np.random.default_rng(0)
    g = rng.choice(3, size=5000, p=[0.6, 0.3, 0.1])
    y = (rng.random(5000) < np.array([0.35, 0.12, 0.2])[g]).astype(np.int64)
    w = reweighing_weights(g, y, num_groups=3, num_classes=2)
    per_row = w[g, y]
    joint = np.zeros((3, 2))
    np.add.at(joint, (g, y), per_row)
    joint /= per_row.sum()
    pg, py = np.bincount(g, minlength=3) / len(g), np.bincount(y, minlength=2) / len(y)
    np.testing.assert_allclose(joint, np.outer(pg, py), rtol=0, atol=1e-12)  # P_w(g, y) = P(g) P(y)
    assert per_row.mean() == pytest.approx(1.0, abs=1e-12)  # the loss keeps its scale
    # the written-out definition, cell by cell
    for a in range(3):
        for b in range(2):
            assert w[a, b] == pytest.approx((g == a).mean() * (y == b).mean() / ((g == a) & (y == b)).mean(), rel=1e-12)
    # before weighting they were dependent: the positive rate differed by group
    assert abs(y[g == 0].mean() - y[g == 1].mean()) > 0.15


def test_an_empty_cell_gets_weight_zero() -> None:
    w = reweighing_weights(np.array([0, 0, 1]), np.array([0, 1, 0]), num_groups=2, num_classes=2)
    assert w[1, 1] == 0.0 and np.isfinite(w).all()
