"""The EMA callback: validation and the model after fit use the averaged weights; training goes on from the raw ones."""

from __future__ import annotations

from pathlib import Path

import torch
from tests.training.engine_helpers import tiny

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.ema import EMACallback
from deepstrata.training.trainer import Trainer


class Snap(Callback):
    def __init__(self) -> None:
        self.at_validation: list[torch.Tensor] = []
        self.at_step: list[torch.Tensor] = []

    def on_validation_end(self, trainer) -> None:
        self.at_validation.append(trainer.task.model[0].weight.detach().clone())

    def on_train_batch_end(self, trainer, output) -> None:
        self.at_step.append(trainer.task.model[0].weight.detach().clone())


def test_ema_callback_evaluates_and_ends_with_the_averaged_weights(tmp_path: Path) -> None:
    task, loader, val = tiny(0)
    start = task.model[0].weight.detach().clone()
    ema, snap = EMACallback(decay=0.8, warmup=False), Snap()
    Trainer(max_epochs=2, callbacks=[ema, snap]).fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.5))
    # The closed-form EMA of the raw weights seen after each step:
    expected = start
    for w in snap.at_step:
        expected = 0.8 * expected + 0.2 * w
    torch.testing.assert_close(task.model[0].weight, expected)  # the model after fit holds the EMA weights
    assert not torch.allclose(expected, snap.at_step[-1], atol=1e-4)
    # Validation saw EMA weights too (epoch 1 ends after 6 steps):
    first = start
    for w in snap.at_step[:6]:
        first = 0.8 * first + 0.2 * w
    torch.testing.assert_close(snap.at_validation[0], first)
    # ... and training went on from the raw weights: step 7 started from at_step[5], not from the EMA.
    assert not torch.allclose(snap.at_step[6], snap.at_validation[0], atol=1e-4)
