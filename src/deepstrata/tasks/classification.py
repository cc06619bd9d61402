"""Classification: inputs to one of K classes.

Problem: the trainer must turn logits and integer labels into a loss, metrics and a
prediction a person can read.
Idea: the model outputs K logits; the loss compares them with the label (cross-entropy by
default), metrics see (logits, labels), and `predict` returns the argmax class with its
softmax probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.registry import register_task
from deepstrata.tasks.base import Quality, StepOutput, Task


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices (N,) long from indices (N,) or soft/one-hot targets (N, K) (their dominant class)."""
    return (y.argmax(dim=1) if y.dim() == 2 else y).long()


class ClassificationTask(Task):
    """Batches of (x, y) with y: (N,) class indices, or (N, K) soft targets (MixUp/CutMix)."""

    kind = "classification"
    default_loss = "cross_entropy"
    default_metrics = ("accuracy",)
    quality = Quality("accuracy", classical=True, majority_class=True, good_at=0.8)

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        logits = self.model(x)  # (N, K)
        loss = self.loss_fn(logits, y)
        return StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard_labels(y))  # metrics compare with the dominant class

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        probs = torch.softmax(self.model(x), dim=1)
        conf, label = probs.max(dim=1)
        return {"label": label, "probability": conf, "probabilities": probs}

    def predict_rows(self, x: torch.Tensor, *, class_names: Sequence[str] | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """{"label", "class_name", "probability"} per input; with top_k > 1 also "top_k": [{...}, ...]."""
        probs = self.predict(x)["probabilities"]
        names = list(class_names) if class_names else [str(i) for i in range(probs.shape[1])]
        k = max(1, min(int(top_k), probs.shape[1]))
        values, labels = probs.topk(k, dim=1)
        rows = []
        for p, i in zip(values, labels):
            row: dict[str, Any] = {"label": int(i[0]), "class_name": names[int(i[0])], "probability": float(p[0])}
            if k > 1:
                row["top_k"] = [{"label": int(b), "class_name": names[int(b)], "probability": float(a)} for a, b in zip(p, i)]
            rows.append(row)
        return rows

    @torch.no_grad()
    def save_test_predictions(self, loader: Any, path: Path) -> bool:
        """Labels, predictions, probabilities and the first 36 misclassified inputs, for the report."""
        self.eval()
        ys, preds, probs, wrong_x, wrong_meta = [], [], [], [], []
        first_x = None
        for x, y in loader:
            first_x = x if first_x is None else first_x
            p = self.predict(x)["probabilities"]
            yhat = p.argmax(dim=1)
            hard = hard_labels(y)
            ys.append(hard.numpy())
            preds.append(yhat.numpy())
            probs.append(p.numpy())
            for i in (yhat != hard).nonzero().flatten().tolist():
                if len(wrong_x) < 36:
                    wrong_x.append(x[i].numpy())
                    wrong_meta.append((int(hard[i]), int(yhat[i])))
        if not ys:
            return False
        empty = np.zeros((0, *first_x.shape[1:]), np.float32)
        np.savez_compressed(
            path,
            y_true=np.concatenate(ys),
            y_pred=np.concatenate(preds),
            probs=np.concatenate(probs),
            wrong_x=np.stack(wrong_x) if wrong_x else empty,
            wrong_true=np.array([m[0] for m in wrong_meta], dtype=np.int64),
            wrong_pred=np.array([m[1] for m in wrong_meta], dtype=np.int64),
        )
        return True


@register_task("classification")
def classification(*, model: Any, loss: Any, metrics: dict[str, Any]) -> ClassificationTask:
    """Classify each input into one of K classes; logits, cross-entropy, accuracy."""
    return ClassificationTask(model, loss, metrics)
