"""A classifier run's logits and labels on one split, gathered once for the tools that need them.

Problem: calibration, uncertainty and OOD tools all start from the same thing, the trained
model's logits on a split with the true labels, and each would otherwise re-walk the loader its
own way. Idea: one function walks `run.loader(split)` in eval mode under no_grad, through the
task's `model_inputs`, and returns float logits (N, K) and the hard labels (N,).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepstrata.errors import UserError
from deepstrata.run.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


def require_classifier(run: Run, tool: str) -> None:
    """A UserError unless the run's task is a classification task (logits over classes)."""
    from deepstrata.tasks.classification import ClassificationTask

    if not issubclass(run.task_class, ClassificationTask):
        raise UserError(f"{tool}: '{run.path}' is a {run.task_name} run; {tool} needs a classifier (a run whose task is classification)")


def split_logits(run: Run, split: str, *, model: nn.Module | None = None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) float32 and labels (N,) long of `split`, from `model` (default: the run's)."""
    import torch

    task = run.task()
    net = (model if model is not None else run.model()).eval()
    logits, labels = [], []
    seen = 0
    with torch.no_grad():
        for batch in run.loader(split):
            inputs = task.model_inputs(batch)
            y = batch[1]
            logits.append(net(*inputs).float())
            labels.append(y.argmax(dim=1) if y.dim() == 2 else y)
            seen += len(labels[-1])
            if limit is not None and seen >= limit:
                break
    if not logits:
        raise UserError(f"the {split} split of '{run.path}' is empty")
    z, y = torch.cat(logits), torch.cat(labels).long()
    return (z[:limit], y[:limit]) if limit is not None else (z, y)
