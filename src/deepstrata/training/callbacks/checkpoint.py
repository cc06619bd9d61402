"""Checkpoints: the last state for exact resume, and the best-k weights by a monitored metric.

Problem: a crash or a bad final epoch should not cost the whole run, and a checkpoint written
while the process dies must not destroy the previous good one.
Idea: write `checkpoints/last.pt` (the complete state of `train/checkpoint.py`: model,
optimizer, schedule, scaler, callbacks, RNG streams, position in the epoch) at the end of every
training epoch and every `every_n_steps` optimizer steps; after each validation keep the
`save_top_k` best weights as safetensors (`best.safetensors` is the best of them). Every file is
written to a temporary file, fsynced and renamed, so a kill never corrupts the previous one, and
gets its SHA-256 in `<file>.sha256` (`run/integrity.py`), which every read checks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.run.integrity import remove_checked, write_checked
from deepstrata.training.callbacks.base import Callback, check_monitor, monitored_value
from deepstrata.training.checkpoint import capture, save_checkpoint
from deepstrata.training.checkpoint import load_checkpoint as load_checkpoint  # re-exported for callers

LAST = "last.pt"
BEST = "best.safetensors"


class Checkpoint(Callback):
    """Saves last.pt (resume) and the top-k weights by `monitor` (best.safetensors is the best)."""

    rank_zero_only = True  # under DDP only rank 0 writes
    runs_last = True  # the Trainer calls it after every other callback: the snapshot is complete

    def __init__(
        self,
        directory: str | Path,
        *,
        monitor: str,
        mode: Literal["min", "max"] = "min",
        save_top_k: int = 1,
        every_n_steps: int | None = None,
    ):
        self.directory = Path(directory)
        self.monitor, self.mode = monitor, mode
        self.save_top_k, self.every_n_steps = save_top_k, every_n_steps
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.top: list[tuple[float, str]] = []  # (value, file name), best first

    def setup(self, trainer: Any) -> None:
        if trainer.val_loader is None and self.monitor.startswith("val/"):
            raise UserError(f"checkpoint monitors '{self.monitor}' but there is no validation split; set data.val_fraction > 0")
        check_monitor(trainer, self.monitor, who="checkpoint", setting="trainer.monitor")

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        if self.every_n_steps and trainer.state.global_step % self.every_n_steps == 0:
            self.save_last(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.save_last(trainer)  # before validation, so last.pt holds the raw (non-EMA) training weights

    def on_validation_end(self, trainer: Any) -> None:
        value = monitored_value(trainer, self.monitor, who="checkpoint", setting="trainer.monitor")
        if value is None or not math.isfinite(value):
            return
        if self.best is None or self._better(value, self.best):
            self.best, self.best_epoch = value, trainer.state.epoch
            self._write_weights(trainer, BEST)
        if self.save_top_k > 1 and (len(self.top) < self.save_top_k or self._better(value, self.top[-1][0])):
            name = f"best-epoch={trainer.state.epoch:03d}-{self.monitor.replace('/', '_')}={value:.4f}.safetensors"
            self._write_weights(trainer, name)
            self.top.append((value, name))
            self.top.sort(key=lambda t: t[0], reverse=self.mode == "max")
            for _, dropped in self.top[self.save_top_k :]:
                remove_checked(self.directory / dropped)
            self.top = self.top[: self.save_top_k]

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        """An interrupt stopped the loop at a step boundary: keep that state for `--resume`."""
        from deepstrata.training.interrupt import TrainingInterrupted

        if isinstance(error, TrainingInterrupted) and not error.immediate:
            self.save_last(trainer)

    def _write_weights(self, trainer: Any, name: str) -> None:
        from safetensors.torch import save_file

        weights = {k: v.detach().cpu().contiguous() for k, v in trainer.task.model.state_dict().items()}
        write_checked(self.directory / name, lambda p: save_file(weights, str(p)))

    def save_last(self, trainer: Any) -> None:
        save_checkpoint(capture(trainer), self.directory / LAST)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "top": [list(t) for t in self.top]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.top = [(float(v), str(n)) for v, n in state.get("top", [])]


@register_callback("checkpoint")
def checkpoint(
    *, run_dir: str, monitor: str = "val/loss", mode: Literal["min", "max"] = "min", save_top_k: int = 1, every_n_steps: int | None = None
) -> Checkpoint:
    """Write checkpoints/last.pt (exact resume) and keep the save_top_k best weights by monitor."""
    if save_top_k < 0 or (every_n_steps is not None and every_n_steps < 1):
        raise UserError(f"checkpoint: save_top_k={save_top_k} must be >= 0 and every_n_steps={every_n_steps} >= 1")
    return Checkpoint(Path(run_dir) / "checkpoints", monitor=monitor, mode=mode, save_top_k=save_top_k, every_n_steps=every_n_steps)
