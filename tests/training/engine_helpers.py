"""A tiny classification setup built without recipes, for fast unit tests of the loop and callbacks, and a
training process killed mid-run for the resume tests (imported by the tests in this folder and in tests/privacy/)."""

from __future__ import annotations

from pathlib import Path

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


# A training process that kills itself, with no cleanup and no final checkpoint, once it has
# taken a given optimizer step: what a crash or an OOM kill leaves behind.
KILLER = """
import os, signal
from deepstrata import api
from deepstrata.training.callbacks.base import Callback

class KillAt(Callback):
    def on_train_batch_end(self, trainer, output):
        if trainer.state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)

api.train({recipe!r}, {overrides!r}, extra_callbacks=[KillAt()])
"""


def train_until_sigkill(recipe: str, overrides: list[str], *, step: int, cwd: Path) -> None:
    """Run `api.train(recipe, overrides)` in a child process that SIGKILLs itself after `step`."""
    import subprocess
    import sys

    script = KILLER.format(step=step, recipe=str(recipe), overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
