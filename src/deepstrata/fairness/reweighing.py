"""Reweighing (Kamiran & Calders 2012): weights that make the group and the label independent.

Problem: when one group carries the positive label far more often in the training data
(Adult: 31% of men earn >50K, 11% of women), a model learns the group as a proxy for the label.
Idea: give each training example of group g and label y the weight
w(g, y) = P(g) P(y) / P(g, y), the probabilities counted on the training rows. Under the
weighted distribution P_w(g, y) = P(g, y) w(g, y) = P(g) P(y): group and label are exactly
independent, while each group's share and each label's share stay as they were. The weights
average to one over the training rows, so the weighted mean loss has the plain loss's scale.
A (group, label) cell with no rows gets weight 0 (there is nothing to weigh).
"""

from __future__ import annotations

import numpy as np


def reweighing_weights(groups: np.ndarray, labels: np.ndarray, *, num_groups: int, num_classes: int) -> np.ndarray:
    """w (num_groups, num_classes) with w[g, y] = P(g) P(y) / P(g, y) on these rows (0 where P(g, y) = 0)."""
    g, y = np.asarray(groups, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    joint = np.bincount(g * num_classes + y, minlength=num_groups * num_classes).reshape(num_groups, num_classes) / len(g)
    pg, py = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(joint > 0, pg * py / np.where(joint > 0, joint, 1), 0.0)
