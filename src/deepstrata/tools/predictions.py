"""A classifier run's inputs, labels and logits on one split, gathered one way for every tool.

Problem: calibration, uncertainty, OOD and attack tools all start from the same thing, the
model's inputs on a split (as the run's task feeds them) with the true labels, and each would
otherwise re-walk the loader its own way (and one would forget soft labels or the limit).
Idea: `labelled_batches` is the one walk: `run.loader(split)` (or any loader with the run's
collate), through the task's `model_inputs`, hard labels, the first `limit` examples.
`input_tensor` concatenates it for tools that need one tensor of values (attacks, OOD);
`split_logits` runs the model over it in eval mode under no_grad.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

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


def labelled_batches(
    run: Run, split: str | None = None, *, loader: Iterable[Any] | None = None, limit: int | None = None
) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    """(model inputs, hard labels (n,)) per batch of `split`, or of `loader`; the first `limit` examples in all.

    A UserError, once the walk is over, if it yielded nothing (an empty split).
    """
    from deepstrata.tasks.classification import hard_labels

    if (split is None) == (loader is None):
        raise TypeError("labelled_batches: pass a split or a loader, not both")
    task = run.task()
    seen = 0
    for batch in run.loader(split) if loader is None else loader:
        inputs, labels = task.model_inputs(batch), hard_labels(batch[1])
        if limit is not None and seen + len(labels) > limit:
            keep = limit - seen
            inputs, labels = tuple(v[:keep] if hasattr(v, "__getitem__") and len(v) == len(labels) else v for v in inputs), labels[:keep]
        seen += len(labels)
        if len(labels):
            yield inputs, labels
        if limit is not None and seen >= limit:
            return
    if seen == 0:
        where = f"the {split} split" if split else "the data"
        raise UserError(f"{where} of '{run.path}' is empty; choose another split with --split, or check data.val_fraction/test_fraction in its recipe")


def input_tensor(
    run: Run, split: str | None = None, *, loader: Iterable[Any] | None = None, limit: int | None = None, tool: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs (N, ...) float and hard labels (N,) concatenated, for models fed one tensor of values."""
    import torch

    xs, ys = [], []
    for inputs, labels in labelled_batches(run, split, loader=loader, limit=limit):
        if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor) or not inputs[0].is_floating_point():
            raise UserError(f"{tool} works on models fed one tensor of values; '{run.path}' feeds its model {len(inputs)} input(s) of another kind")
        xs.append(inputs[0])
        ys.append(labels)
    return torch.cat(xs), torch.cat(ys)


def split_logits(run: Run, split: str, *, model: nn.Module | None = None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) float32 and labels (N,) long of `split`, from `model` (default: the run's)."""
    import torch

    net = (model if model is not None else run.model()).eval()
    logits, labels = [], []
    with torch.no_grad():
        for inputs, y in labelled_batches(run, split, limit=limit):
            logits.append(net(*inputs).float())
            labels.append(y)
    return torch.cat(logits), torch.cat(labels)
