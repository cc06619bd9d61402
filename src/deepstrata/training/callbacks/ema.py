"""EMA of weights during training: evaluate and save the averaged model.

Problem: evaluating the last noisy SGD iterate under-reports what the run learned.
Idea: keep an exponential moving average of the weights (`train/ema.py`) updated after every
optimizer step; validation, the best checkpoints, the test metrics and the saved model use the
averaged weights, while training continues on the raw ones (Polyak & Juditsky 1992).
"""

from __future__ import annotations

from typing import Any

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback
from deepstrata.training.ema import ExponentialMovingAverage


class EMACallback(Callback):
    """Swaps the EMA weights in from validation until training resumes, and for good at the end.

    Place it before `early_stopping` in a recipe's callbacks when both are used.
    """

    def __init__(self, *, decay: float = 0.999, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.ema: ExponentialMovingAverage | None = None
        self._backup: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Any) -> None:
        # Not in setup: other callbacks' setup may still change the weights (weight_init, pretrained).
        self.ema = ExponentialMovingAverage(trainer.task.model, decay=self.decay, warmup=self.warmup)
        if self._pending is not None:
            self.ema.load_state_dict(self._pending)
            self._pending = None

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        self.ema.update(trainer.task.model)  # after a skipped step this averages in unchanged weights

    def _swap_in(self, model: Any) -> None:
        if self._backup is None:
            self._backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.ema.copy_to(model)

    def _swap_out(self, model: Any) -> None:
        if self._backup is not None:
            model.load_state_dict(self._backup)
            self._backup = None

    def on_validation_start(self, trainer: Any) -> None:
        self._swap_in(trainer.task.model)

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._swap_out(trainer.task.model)

    def on_fit_end(self, trainer: Any) -> None:
        self._swap_in(trainer.task.model)
        self._backup = None  # the EMA weights stay: test metrics and the saved model use them

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict() if self.ema is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.ema is None:
            self._pending = state
        else:
            self.ema.load_state_dict(state)


@register_callback("ema")
def ema(*, decay: float = 0.999, warmup: bool = True) -> EMACallback:
    """Exponential moving average of the weights; evaluation and the saved model use it."""
    if not 0.0 < decay < 1.0:
        raise UserError(f"ema.decay must lie in (0, 1), got {decay}; 0.999 is typical")
    return EMACallback(decay=decay, warmup=warmup)
