"""Checkpoints: the last state and the best weights, written atomically.

Problem: a crash or a bad final epoch should not cost the whole run.
Idea: after every validation, write `checkpoints/last.pt` (model, optimizer, scheduler,
trainer and callback state; read back with `torch.load(weights_only=True)`) and, when the
monitored metric improves, `checkpoints/best.safetensors` (weights only). Both are written
to a temporary file and renamed, so a kill never corrupts the previous good file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.run.atomic import atomic_write
from deepstrata.train.callbacks.base import Callback


class Checkpoint(Callback):
    """Saves last.pt after each validation and best.safetensors when `monitor` improves."""

    def __init__(self, directory: str | Path, *, monitor: str, mode: Literal["min", "max"] = "min"):
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None

    def setup(self, trainer: Any) -> None:
        if trainer.val_loader is None and self.monitor.startswith("val/"):
            raise UserError(f"checkpoint monitors '{self.monitor}' but there is no validation split; set data.val_fraction > 0")

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_validation_end(self, trainer: Any) -> None:
        if trainer.state.stage != "fit":
            return
        value = trainer.state.val_metrics.get(self.monitor)
        if value is None:
            raise UserError(
                f"checkpoint monitor '{self.monitor}' is not among the validation metrics "
                f"({', '.join(sorted(trainer.state.val_metrics))}); set trainer.monitor to one of them"
            )
        if self._improved(value):
            self.best, self.best_epoch = value, trainer.state.epoch
            from safetensors.torch import save_file

            weights = {k: v.detach().cpu().contiguous() for k, v in trainer.task.model.state_dict().items()}
            atomic_write(self.directory / "best.safetensors", lambda p: save_file(weights, str(p)))
        self.save_last(trainer)

    def save_last(self, trainer: Any) -> None:
        state = {
            "model": trainer.task.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict() if trainer.optimizer else {},
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else {},
            "trainer": trainer.state.state_dict(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in trainer.callbacks},
        }
        atomic_write(self.directory / "last.pt", lambda p: torch.save(state, p))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


@register_callback("checkpoint")
def checkpoint(*, run_dir: str, monitor: str = "val/loss", mode: Literal["min", "max"] = "min") -> Checkpoint:
    """Write checkpoints/last.pt each epoch and best.safetensors when the monitor improves."""
    return Checkpoint(Path(run_dir) / "checkpoints", monitor=monitor, mode=mode)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a last.pt checkpoint safely (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)
