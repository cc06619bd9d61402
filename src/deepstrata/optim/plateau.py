"""Reduce the learning rate on a plateau of a validation metric (as in Keras/torch `ReduceLROnPlateau`).

Problem: a fixed schedule does not know when progress has stalled: it either decays too early
and wastes the run's second half, or too late and wastes epochs bouncing around a minimum.
Idea: watch the validation metric; after `patience` validations without an improvement of at
least `threshold`, multiply the LR by `factor`. Because it needs the metric, this schedule is
also a callback: the trainer steps it every optimizer step (for warm-up) and it listens to
`on_validation_end`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_scheduler
from deepstrata.training.callbacks.base import Callback, check_monitor, monitored_value


class ReduceOnPlateau(Callback):
    """A schedule driven by a monitored metric; `step()` per optimizer step, reductions per validation."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        monitor: str,
        mode: Literal["min", "max"],
        factor: float,
        patience: int,
        threshold: float,
        min_lr: float,
        warmup_steps: int,
    ):
        if not 0 < factor < 1:
            raise UserError(f"scheduler.factor must lie in (0, 1), got {factor}")
        self.optimizer = optimizer
        self.monitor, self.mode, self.factor, self.patience = monitor, mode, factor, patience
        self.threshold, self.min_lr, self.warmup_steps = threshold, min_lr, warmup_steps
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.scale = 1.0  # product of the reductions so far
        self.steps = 0
        self.best: float | None = None
        self.bad_validations = 0
        self._apply()

    def _apply(self) -> None:
        warm = min(1.0, (self.steps + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = max(self.min_lr, base * self.scale) * warm

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def observe(self, value: float) -> None:
        """One validation result: reset patience on improvement, reduce the LR after `patience` bad ones."""
        better = self.best is None or (
            value < self.best - self.threshold if self.mode == "min" else value > self.best + self.threshold
        )
        if better and math.isfinite(value):
            self.best, self.bad_validations = value, 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.scale *= self.factor
            self.bad_validations = 0
            self._apply()

    def setup(self, trainer: Any) -> None:
        if trainer.val_loader is None:
            raise UserError("scheduler reduce_on_plateau needs a validation split; set data.val_fraction > 0")
        check_monitor(trainer, self.monitor, who="scheduler reduce_on_plateau", setting="scheduler.monitor")

    def on_validation_end(self, trainer: Any) -> None:
        value = monitored_value(trainer, self.monitor, who="scheduler reduce_on_plateau", setting="scheduler.monitor")
        if value is not None:
            self.observe(value)

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "steps": self.steps, "best": self.best, "bad_validations": self.bad_validations, "base_lrs": self.base_lrs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.steps, self.best = state["scale"], state["steps"], state["best"]
        self.bad_validations, self.base_lrs = state["bad_validations"], list(state["base_lrs"])
        self._apply()


@register_scheduler("reduce_on_plateau")
def reduce_on_plateau(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    *,
    monitor: str = "val/loss",
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int = 5,
    threshold: float = 1e-4,
    min_lr: float = 0.0,
    warmup_steps: int = 0,
) -> ReduceOnPlateau:
    """Multiply the LR by factor after patience validations without improvement of the monitored metric."""
    return ReduceOnPlateau(
        optimizer, monitor=monitor, mode=mode, factor=factor, patience=patience, threshold=threshold, min_lr=min_lr, warmup_steps=warmup_steps
    )
