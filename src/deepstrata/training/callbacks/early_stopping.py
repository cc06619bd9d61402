"""Early stopping: end training when the validation metric stops improving, keep the best weights.

Problem: past some epoch the training loss still falls while the validation loss rises: the
model memorises, and every further epoch makes it worse and costs time.
Idea: watch a validation metric; stop after `patience` validations without an improvement of
at least `min_delta`, and put back the weights of the best validation (Prechelt 1998,
"Early stopping - but when?").
"""

from __future__ import annotations

import math
from typing import Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback, check_monitor, monitored_value


class EarlyStopping(Callback):
    """Sets `state.should_stop` after `patience` validations without improvement."""

    def __init__(self, *, monitor: str, mode: Literal["min", "max"], patience: int, min_delta: float, restore_best_weights: bool):
        if patience < 0 or min_delta < 0:
            raise UserError(f"early_stopping: patience={patience} and min_delta={min_delta} must be >= 0")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, Any] | None = None

    def setup(self, trainer: Any) -> None:
        if trainer.val_loader is None:
            raise UserError("early_stopping needs a validation split; set data.val_fraction > 0")
        check_monitor(trainer, self.monitor, who="early_stopping", setting="its monitor")

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_validation_end(self, trainer: Any) -> None:
        value = monitored_value(trainer, self.monitor, who="early_stopping", setting="its monitor")
        if value is None:
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, trainer.state.epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.task.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.state.should_stop = True
            trainer.state.stop_reason = (
                f"early stopping: {self.monitor} did not improve by {self.min_delta} for {self.patience} validations "
                f"(best {self.best:.4f} at epoch {self.best_epoch + 1})"
            )

    def on_fit_end(self, trainer: Any) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.task.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state.get("best"), state.get("best_epoch"), int(state.get("wait", 0))
        self.best_weights = state.get("best_weights")


@register_callback("early_stopping")
def early_stopping(
    *, monitor: str = "val/loss", mode: Literal["min", "max"] = "min", patience: int = 5, min_delta: float = 0.0, restore_best_weights: bool = True
) -> EarlyStopping:
    """Stop after patience validations without min_delta improvement of monitor; restore the best weights."""
    return EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, restore_best_weights=restore_best_weights)
