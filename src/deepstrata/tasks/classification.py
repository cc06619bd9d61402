"""Classification: inputs to one of K classes.

Problem: the trainer must turn logits and integer labels into a loss, metrics and a
prediction a person can read.
Idea: the model outputs K logits; the loss compares them with the label (cross-entropy by
default), metrics see (logits, labels), and `predict` returns the argmax class with its
softmax probability.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput, Task


class ClassificationTask(Task):
    """Batches of (x, y) with y: (N,) class indices, or (N, K) soft targets (MixUp/CutMix)."""

    kind = "classification"
    default_loss = "cross_entropy"
    default_metrics = ("accuracy",)

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        logits = self.model(x)  # (N, K)
        loss = self.loss_fn(logits, y)
        hard = y.argmax(dim=1) if y.dim() == 2 else y  # metrics compare with the dominant class
        return StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        probs = torch.softmax(self.model(x), dim=1)
        conf, label = probs.max(dim=1)
        return {"label": label, "probability": conf, "probabilities": probs}


@register_task("classification")
def classification(*, model: Any, loss: Any, metrics: dict[str, Any]) -> ClassificationTask:
    """Classify each input into one of K classes; logits, cross-entropy, accuracy."""
    return ClassificationTask(model, loss, metrics)
