"""A task turns a batch into a loss and metric updates, so the Trainer needs to know neither.

Problem: a training loop that knows about labels, logits and accuracy cannot train an
autoencoder or a language model without growing `if` branches.
Idea: the loop only asks the task for `training_step(batch) -> StepOutput(loss, ...)` and
`evaluation_step(batch)`; the task owns the model, the loss and one set of metrics per split
(`train`, `val`, `test`), named `<split>/<metric>` when computed. (Lightning's
LightningModule, reduced to what a recipe-driven loop needs.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

SPLITS = ("train", "val", "test")


@dataclass
class StepOutput:
    """What one step produced. loss: scalar tensor; preds/target: for metrics and reports."""

    loss: torch.Tensor
    batch_size: int
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class Task(nn.Module):
    """Holds the model, the loss and per-split metrics; subclasses define the steps."""

    kind = "task"

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any]):
        super().__init__()
        self.model = model
        self.loss_fn = loss
        # One independent copy of every metric per split, so validation never mixes with training.
        # (ModuleDict keys cannot be "train": that name is nn.Module.train.)
        self._metrics = nn.ModuleDict(
            {f"{split}_split": nn.ModuleDict({name: _copy_metric(m) for name, m in metrics.items()}) for split in SPLITS}
        )
        self._loss_sum: dict[str, float] = {s: 0.0 for s in SPLITS}
        self._loss_count: dict[str, int] = {s: 0 for s in SPLITS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def shared_step(self, batch: Any) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch: Any) -> StepOutput:
        out = self.shared_step(batch)
        self.update_metrics("train", out)
        return out

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        out = self.shared_step(batch)
        self.update_metrics(split, out)
        return out

    def split_metrics(self, split: str) -> nn.ModuleDict:
        """The metrics of one split ("train", "val" or "test"), by name."""
        return self._metrics[f"{split}_split"]

    def update_metrics(self, split: str, out: StepOutput) -> None:
        self._loss_sum[split] += float(out.loss.detach()) * out.batch_size
        self._loss_count[split] += out.batch_size
        if out.preds is not None:
            for metric in self.split_metrics(split).values():
                metric.update(out.preds.detach(), out.target)

    def compute_metrics(self, split: str) -> dict[str, float]:
        """`{"<split>/loss": ..., "<split>/<metric>": ...}` over the steps since the last reset; then reset."""
        result: dict[str, float] = {}
        if self._loss_count[split]:
            result[f"{split}/loss"] = self._loss_sum[split] / self._loss_count[split]
        for name, metric in self.split_metrics(split).items():
            if getattr(metric, "update_count", 1):
                result[f"{split}/{name}"] = float(metric.compute())
            metric.reset()
        self._loss_sum[split], self._loss_count[split] = 0.0, 0
        return result

    def predict(self, x: torch.Tensor) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _copy_metric(metric: Any) -> Any:
    clone = getattr(metric, "clone", None)
    return clone() if clone is not None else metric
