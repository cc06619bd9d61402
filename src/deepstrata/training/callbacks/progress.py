"""Progress feedback: a live bar in a terminal, plain periodic lines in a log.

Problem: a long run that prints nothing looks hung; a live progress bar written into a CI
log becomes thousands of unreadable lines.
Idea: when stderr is a terminal, show a rich bar with loss, the main metric, samples/s and
ETA; otherwise print one plain line per epoch. Output goes to stderr so stdout stays clean
for `--json`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class Progress(Callback):
    """Rich progress bar on a terminal, one line per epoch otherwise; silent when mode is off."""

    rank_zero_only = True  # under DDP only rank 0 writes

    def __init__(self, *, mode: Literal["auto", "bar", "lines", "off"] = "auto", stream: Any = None):
        self.stream = stream or sys.stderr
        self.mode = mode
        self._bar: Any = None
        self._task_id: Any = None
        self._samples = 0
        self._t0 = 0.0

    def _use_bar(self) -> bool:
        return self.mode == "bar" or (self.mode == "auto" and getattr(self.stream, "isatty", lambda: False)())

    def on_fit_start(self, trainer: Any) -> None:
        self._t0 = time.perf_counter()
        if self.mode == "off" or not self._use_bar():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        total = trainer.max_epochs * -(-len(trainer.train_loader) // trainer.accumulate_grad_batches)  # optimizer steps
        if trainer.max_steps:
            total = min(total, trainer.max_steps)
        self._bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._bar.start()
        self._task_id = self._bar.add_task("train", total=total, completed=trainer.state.global_step, epoch=trainer.state.epoch + 1, info="")

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        self._samples += output.batch_size
        if self._bar is None:
            return
        rate = self._samples / max(1e-9, time.perf_counter() - self._t0)
        info = f"loss {float(output.loss):.4f} | {rate:,.0f} samples/s"
        if trainer.state.val_metrics:
            key = next(iter(k for k in trainer.state.val_metrics if k != "val/loss"), "val/loss")
            info += f" | {key} {trainer.state.val_metrics[key]:.4f}"
        self._bar.update(self._task_id, advance=1, epoch=trainer.state.epoch + 1, info=info)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.mode == "off" or self._bar is not None or record.get("scope") != "epoch":
            return
        elapsed = time.perf_counter() - self._t0
        parts = [f"epoch {record['epoch']}/{trainer.max_epochs}", f"step {record['step']}"]
        parts += [f"{k} {v:.4f}" for k, v in record.items() if "/" in k and not k.startswith("time/") and isinstance(v, float)]
        parts.append(f"{self._samples / max(elapsed, 1e-9):,.0f} samples/s")
        done = record["epoch"] / trainer.max_epochs
        if 0 < done < 1:
            parts.append(f"ETA {elapsed / done * (1 - done):.0f}s")
        print(" | ".join(parts), file=self.stream, flush=True)

    def on_fit_end(self, trainer: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        self.on_fit_end(trainer)


@register_callback("progress")
def progress(*, mode: Literal["auto", "bar", "lines", "off"] = "auto") -> Progress:
    """Live progress bar in a terminal (loss, metric, samples/s, ETA); plain lines in logs."""
    return Progress(mode=mode)
