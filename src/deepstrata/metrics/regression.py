"""Regression metrics from torchmetrics.

Problem: a loss value alone does not say how far off predictions are in the target's units.
Idea: report mean absolute error and root mean squared error, both in the target's units.
"""

from __future__ import annotations

from typing import Any

from deepstrata.registry import register_metric


@register_metric("mae")
def mae() -> Any:
    """Mean absolute error, in the target's units."""
    from torchmetrics.regression import MeanAbsoluteError

    return MeanAbsoluteError()


@register_metric("rmse")
def rmse() -> Any:
    """Root mean squared error, in the target's units."""
    from torchmetrics.regression import MeanSquaredError

    return MeanSquaredError(squared=False)
