"""Regression: inputs to real-valued targets.

Problem: predicting a number needs a loss on distances, not on class probabilities.
Idea: the model outputs the target's shape directly; the loss (MSE by default) and metrics
(MAE, RMSE) compare it with the target.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.registry import register_task
from deepstrata.tasks.base import Quality, StepOutput, Task


class RegressionTask(Task):
    """Batches of (x, y) with y: (N,) or (N, D) float targets."""

    kind = "regression"
    default_loss = "mse"
    default_metrics = ("mae", "rmse")
    quality = Quality("rmse", higher_is_better=False, classical=True)

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        pred = self.model(x).reshape(y.shape)
        return StepOutput(loss=self.loss_fn(pred, y), batch_size=x.shape[0], preds=pred, target=y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        return {"value": self.model(x)}


@register_task("regression")
def regression(*, model: Any, loss: Any, metrics: dict[str, Any]) -> RegressionTask:
    """Predict real-valued targets; mean squared error, MAE and RMSE."""
    return RegressionTask(model, loss, metrics)
