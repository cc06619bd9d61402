"""Classification metrics from torchmetrics.

Problem: accuracy hides what a classifier gets wrong on rare classes.
Idea: report accuracy next to macro-averaged F1 (each class counts equally) and keep the
confusion matrix for the report; torchmetrics accumulates them correctly across batches.
"""

from __future__ import annotations

from typing import Any

from deepstrata.registry import register_metric


@register_metric("accuracy")
def accuracy(*, num_classes: int) -> Any:
    """Share of inputs whose top-scoring class is the true class (micro accuracy)."""
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(num_classes=num_classes, average="micro")


@register_metric("f1_macro")
def f1_macro(*, num_classes: int) -> Any:
    """F1 score averaged over classes with equal weight (rare classes count as much)."""
    from torchmetrics.classification import MulticlassF1Score

    return MulticlassF1Score(num_classes=num_classes, average="macro")
