"""A tiny classification setup built without recipes, for fast unit tests of the loop and callbacks (imported by the tests in this folder)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepstrata.losses.cross_entropy import cross_entropy
from deepstrata.tasks.classification import ClassificationTask
from deepstrata.training.callbacks.base import Callback


def make_task(seed: int = 0, *, hidden: int = 16, in_features: int = 10, classes: int = 3) -> ClassificationTask:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, classes))
    return ClassificationTask(model, cross_entropy(), {})


def make_data(n: int = 96, *, in_features: int = 10, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_features, generator=g)
    y = (x[:, :classes].argmax(dim=1)).long()
    return TensorDataset(x, y)


def make_loader(dataset: TensorDataset, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> DataLoader:
    from deepstrata.training.sampler import ResumableSampler

    sampler = ResumableSampler(dataset, seed=seed, shuffle=shuffle)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def tiny(seed: int = 0, batch_size: int = 16) -> tuple:
    """(task, train_loader, val_loader) on 96 training and 48 validation points."""
    return make_task(seed), make_loader(make_data(96), batch_size), make_loader(make_data(48, seed=1), 48, shuffle=False)


class Recorder(Callback):
    """Keeps every logged record and, per optimizer step, the gradients the step will apply."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.grads: list[list[torch.Tensor]] = []

    def on_log(self, trainer, record) -> None:
        self.records.append(record)

    def on_before_optimizer_step(self, trainer) -> None:  # after clipping (listed after it)
        self.grads.append([p.grad.clone() for p in trainer.task.model.parameters()])
