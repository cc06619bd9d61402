"""TensorBoard logging: every metric record as a scalar event.

Problem: comparing curves across many runs in a metrics file needs custom plotting code.
Idea: write each numeric value of every `trainer.log` record to a TensorBoard event file in
`<run_dir>/tensorboard` (tag `<split>/<name>`, x = optimizer step), so `tensorboard --logdir
runs` overlays all runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


def scalar_items(record: dict[str, Any]) -> list[tuple[str, float]]:
    """The numeric `<split>/<name>` values of a record, for trackers keyed by (tag, step).

    An epoch record's training metrics become `train/<name>_epoch`: the per-step `train/loss`
    and the epoch's mean `train/loss` share a step number and would overwrite each other.
    """
    epoch = record.get("scope") == "epoch"
    items = []
    for key, value in record.items():
        if "/" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            items.append((f"{key}_epoch" if epoch and key.startswith("train/") else key, float(value)))
    return items


class TensorBoardLogger(Callback):
    rank_zero_only = True

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def _open(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        writer = self._open()
        step = int(record.get("step", 0))
        for key, value in scalar_items(record):
            writer.add_scalar(key, value, step)
        if record.get("scope") != "step":
            writer.flush()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_test_end(self, trainer: Any) -> None:
        self._close()

    def on_fit_end(self, trainer: Any) -> None:
        if self._writer is not None:
            self._writer.flush()

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        self._close()


@register_callback("tensorboard")
def tensorboard(*, run_dir: str, subdir: str = "tensorboard") -> TensorBoardLogger:
    """Write every logged metric to TensorBoard event files in <run_dir>/tensorboard."""
    return TensorBoardLogger(Path(run_dir) / subdir)
