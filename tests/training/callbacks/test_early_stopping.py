"""Early stopping stops after `patience` bad validations and puts back the best weights."""

from __future__ import annotations

import torch
from tests.training.engine_helpers import tiny

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.early_stopping import EarlyStopping
from deepstrata.training.trainer import Trainer


class ScriptedMetric(Callback):
    """Replaces val/score with a scripted sequence and records the weights at each validation."""

    adds_validation_metrics = ("val/score",)

    def __init__(self, values: list[float]):
        self.values, self.weights = values, []

    def on_validation_end(self, trainer) -> None:
        trainer.state.val_metrics["val/score"] = self.values[trainer.state.epoch]
        self.weights.append(trainer.task.model[0].weight.detach().clone())


def test_stops_after_patience_without_min_delta_improvement_and_restores_best() -> None:
    task, loader, val = tiny(0)
    # Epoch 3 (0.805) improves by less than min_delta=0.01 over 0.8: it does not count.
    script = ScriptedMetric([0.5, 0.8, 0.805, 0.79, 0.7, 0.9, 0.95])
    stopper = EarlyStopping(monitor="val/score", mode="max", patience=3, min_delta=0.01, restore_best_weights=True)
    trainer = Trainer(max_epochs=7, callbacks=[script, stopper])
    trainer.fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.5))
    assert trainer.state.epoch == 5  # validations 3, 4, 5 were not better: stop after the 5th epoch
    assert "early stopping" in trainer.state.stop_reason and stopper.best == 0.8
    torch.testing.assert_close(task.model[0].weight, script.weights[1])  # the weights of epoch 2
    assert not torch.allclose(script.weights[1], script.weights[-1])


def test_min_mode_and_state_round_trip() -> None:
    stopper = EarlyStopping(monitor="val/loss", mode="min", patience=1, min_delta=0.0, restore_best_weights=False)
    stopper.best, stopper.wait = 0.3, 1
    again = EarlyStopping(monitor="val/loss", mode="min", patience=1, min_delta=0.0, restore_best_weights=False)
    again.load_state_dict(stopper.state_dict())
    assert again.best == 0.3 and again.wait == 1 and again._improved(0.29) and not again._improved(0.31)
