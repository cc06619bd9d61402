"""Reweighing (Kamiran & Calders 2012) as a training option: a classification task whose loss weighs each example by its (group, label) cell.

Problem: a classifier trained on data where one group holds the positive label more often
learns the group as a proxy, and its selection rates differ by group.
Idea: weigh example i of group g and label y by w(g, y) = P(g) P(y) / P(g, y), counted on the
training rows (fairness/reweighing.py): in the weighted training distribution the group and the
label are independent. The training loss is the weighted mean sum_i w_i l_i / sum_i w_i of the
recipe's per-example cross-entropy; validation and test losses stay unweighted, so early
stopping and reported metrics mean what they mean for any classifier.
A recipe turns any binary or multi-class classification recipe on tabular data into a
reweighed one: `task: {name: reweighing, group: sex}`.

How the task knows each example's group: a batch carries only (x, y), so the group is read
from x, the group's categorical column named in the data's `input_spec` (columns,
categories; fairness/groups.py). The weights are counted from the same column on the training
rows. The limitation: the group must be an input feature; data loaded with `drop: [sex]` is
refused with a message saying so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.data.base import DataBundle
from deepstrata.data.tensor_loader import tensor_source
from deepstrata.errors import UserError
from deepstrata.fairness.groups import GroupColumn, group_column
from deepstrata.fairness.reweighing import reweighing_weights
from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput
from deepstrata.tasks.classification import ClassificationTask, hard_labels


def per_example_loss(loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor, *, who: str) -> torch.Tensor:
    """The recipe's cross-entropy per example (N,): its label smoothing and class weights kept."""
    if not hasattr(loss_fn, "label_smoothing"):
        raise UserError(f"{who}: weighs a per-example cross-entropy; set loss: {{name: cross_entropy}} in the recipe (got {type(loss_fn).__name__})")
    return F.cross_entropy(logits, y, weight=getattr(loss_fn, "weight", None), label_smoothing=float(loss_fn.label_smoothing), reduction="none")


def training_rows(data: DataBundle, *, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split's inputs (N, F) and hard labels (N,), from the tensors the data holds."""
    source = tensor_source(data.train)
    if source is None:
        raise UserError(f"{who}: needs data held as tensors in memory (a tabular dataset); '{data.name}' gives {type(data.train).__name__}")
    tensors, index = source
    x, y = tensors[0], tensors[1]
    if index is not None:
        x, y = x[index], y[index]
    if x.dim() != 2:
        raise UserError(f"{who}: needs tabular rows (N, F); '{data.name}' gives inputs of shape {tuple(x.shape[1:])}")
    return x, hard_labels(y)


class ReweighingTask(ClassificationTask):
    """Classification trained with Kamiran-Calders weights w(group, label) on each example's loss."""

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any], *, data: DataBundle, group: str):
        super().__init__(model, loss, metrics)
        self.group: GroupColumn = group_column(data.input_spec, group, who="reweighing")
        x, y = training_rows(data, who="reweighing")
        codes = self.group.codes(x)
        k = int(data.num_classes or int(y.max()) + 1)
        table = reweighing_weights(codes.numpy(), y.numpy(), num_groups=len(self.group.levels), num_classes=k)
        self.register_buffer("weights", torch.as_tensor(table, dtype=torch.float32), persistent=False)

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Any) -> ClassificationTask:
        """A reweighed model predicts like any classifier: the weights only shaped its training."""
        return ClassificationTask(model, nn.Identity(), {})

    def example_weights(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """w(g_i, y_i) (N,) of a batch: the group read from x's group column."""
        return self.weights.to(x.device)[self.group.codes(x).to(x.device), hard_labels(y)]

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        logits = self.model(x)
        w = self.example_weights(x, y)
        losses = per_example_loss(self.loss_fn, logits, y, who="reweighing")
        loss = (w * losses).sum() / w.sum().clamp_min(1e-12)
        out = StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard_labels(y))
        self.update_metrics("train", out)
        return out

    def weight_table(self) -> dict[str, list[float]]:
        """{group level: [w(g, y) for each class]}, as the task computed it."""
        return {level: [float(v) for v in row] for level, row in zip(self.group.levels, np.asarray(self.weights))}


@register_task("reweighing")
def reweighing(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any, group: str) -> ReweighingTask:
    """Reweighing (Kamiran & Calders 2012): each training example's loss weighed by P(g)P(y)/P(g,y), so group and label are independent.

    group: the categorical input column holding the group (e.g. sex); it must be a feature of the data.
    """
    return ReweighingTask(model, loss, metrics, data=data, group=group)
