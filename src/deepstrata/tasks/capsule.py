"""Capsule classification: the margin loss on capsule lengths plus the reconstruction regulariser.

Problem: a capsule network is trained on two things at once, the class capsules' lengths
and a reconstruction of the input from the true class's capsule, which a plain
`loss(logits, labels)` step cannot express.
Idea: a classification task whose step asks the model for its class capsules, scores
them by length (the predictions metrics see), decodes the image from the true class's
capsule and hands both to the loss (`margin`: margin + weight x squared error).
(Sabour, Frosst & Hinton 2017.)
"""

from __future__ import annotations

from typing import Any

from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput
from deepstrata.tasks.classification import ClassificationTask


class CapsuleClassificationTask(ClassificationTask):
    """Batches of (x, y); the model must offer `capsules(x)` and `reconstruct(capsules, y)`."""

    kind = "capsule_classification"
    default_loss = "margin"
    default_metrics = ("accuracy",)

    def __init__(self, model: Any, loss: Any, metrics: dict[str, Any]):
        missing = [m for m in ("capsules", "reconstruct") if not callable(getattr(model, m, None))]
        if missing:
            names = ", ".join(f"{m}()" for m in missing)
            raise ValueError(f"task capsule_classification needs a capsule model (e.g. capsnet); {type(model).__name__} has no {names}")
        super().__init__(model, loss, metrics)

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        caps = self.model.capsules(x)  # (N, K, D)
        lengths = caps.norm(dim=-1)  # (N, K): how present each class is
        recon = self.model.reconstruct(caps, y)  # from the true class's capsule, as in training in the paper
        loss = self.loss_fn(lengths, y, reconstruction=recon, images=x)
        return StepOutput(loss=loss, batch_size=x.shape[0], preds=lengths, target=y)


@register_task("capsule_classification")
def capsule_classification(*, model: Any, loss: Any, metrics: dict[str, Any]) -> CapsuleClassificationTask:
    """Classify with a capsule network: margin loss on capsule lengths + reconstruction error."""
    return CapsuleClassificationTask(model, loss, metrics)
