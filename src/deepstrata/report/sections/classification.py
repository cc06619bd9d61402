"""What a classifier gets wrong: the confusion matrix and a grid of misclassified inputs.

Problem: accuracy says how often a classifier errs, not which classes it confuses or why.
Idea: a confusion matrix of the test set (rows: true class, columns: predicted) and the
misclassified test images with their true and predicted labels.
"""

from __future__ import annotations

import numpy as np

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run


def _class_names(run: Run, k: int) -> list[str]:
    names = run.info.get("class_names")
    return names if names and len(names) == k else [str(i) for i in range(k)]


@register_report_section("confusion_matrix")
def confusion_matrix(run: Run) -> Section | None:
    """Confusion matrix of the test set for classifiers."""
    pred = run.predictions
    if pred is None or "y_true" not in pred:
        return None
    import matplotlib.pyplot as plt

    k = pred["probs"].shape[1]
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (pred["y_true"], pred["y_pred"]), 1)
    names = _class_names(run, k)
    fig, ax = plt.subplots(figsize=(0.5 * k + 2.5, 0.5 * k + 2))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k), names, rotation=90 if k > 12 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = float(np.trace(cm) / cm.sum())
    return Section("Confusion matrix (test)", f"<p>{cm.sum()} test inputs, accuracy {acc:.4f}</p>" + figure_html(fig, alt="confusion matrix"), order=30)


@register_report_section("misclassified")
def misclassified(run: Run) -> Section | None:
    """A grid of misclassified test images (image classifiers only)."""
    pred = run.predictions
    if pred is None or "wrong_x" not in pred or pred["wrong_x"].ndim != 4:
        return None
    wrong = pred["wrong_x"]
    if len(wrong) == 0:
        return Section("Misclassified test images", "<p>None: every test image was classified correctly.</p>", order=35)
    import matplotlib.pyplot as plt

    names = _class_names(run, pred["probs"].shape[1])
    cols = min(9, len(wrong))
    rows = -(-len(wrong) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, p in zip(axes.flat, wrong, pred["wrong_true"], pred["wrong_pred"]):
        shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
        ax.imshow(shown, cmap="gray_r" if img.shape[0] == 1 else None)
        ax.set_title(f"{names[t]}→{names[p]}", fontsize=8)
    return Section(
        "Misclassified test images",
        f"<p>true→predicted; first {len(wrong)} shown.</p>" + figure_html(fig, alt="misclassified test images"),
        order=35,
    )
