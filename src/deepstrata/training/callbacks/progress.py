"""Progress feedback: a live bar in a terminal, plain periodic lines in a log.

Problem: a long run that prints nothing looks hung; a live progress bar written into a CI
log becomes thousands of unreadable lines; a bar that redraws one line forgets every epoch
it has shown.
Idea: when stderr is a terminal, show a rich bar for the current epoch (`epoch k/N`, steps,
loss, samples/s, ETA) and, when the epoch ends, replace it by one summary line that stays on
screen; otherwise print only the summary lines. Output goes to stderr so stdout stays clean
for `--json`. The bar shows the loss the trainer has already read for its step log, so it
adds no device sync of its own.
"""

from __future__ import annotations

import math
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
        self._counts_samples = True
        self._epochs = 0  # N in "epoch k/N": the epochs this fit will run
        self._samples = 0  # samples of the current epoch
        self._t_fit = 0.0
        self._t_epoch = 0.0
        self._train_s = 0.0  # seconds of the current epoch spent training (validation excluded)

    def _use_bar(self) -> bool:
        return self.mode == "bar" or (self.mode == "auto" and getattr(self.stream, "isatty", lambda: False)())

    def on_fit_start(self, trainer: Any) -> None:
        self._t_fit = time.perf_counter()
        # A task whose StepOutput.batch_size is not a count of input samples (a full-graph step
        # weighs its loss by labelled nodes) says so; a rate of such counts would mislead.
        self._counts_samples = bool(getattr(trainer.task, "counts_samples", True))
        per_epoch = _steps_per_epoch(trainer)
        self._epochs = trainer.max_epochs
        if trainer.max_steps and per_epoch:
            self._epochs = min(self._epochs, math.ceil(trainer.max_steps / per_epoch))
        if self.mode == "off" or not self._use_bar():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._t_epoch = time.perf_counter()
        self._samples = 0
        if self._bar is None:
            return
        s = trainer.state
        done = s.batch_idx // trainer.accumulate_grad_batches  # a resumed epoch starts part-way
        total = _steps_per_epoch(trainer)
        if total is not None and trainer.max_steps:
            total = min(total, done + max(0, trainer.max_steps - s.global_step))
        self._task_id = self._bar.add_task("train", total=total, completed=done, epoch=f"{s.epoch + 1}/{self._epochs}", info="")

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        self._samples += output.batch_size
        if self._bar is not None and self._task_id is not None:
            self._bar.update(self._task_id, advance=1, info=self._bar_info(trainer))

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._train_s = time.perf_counter() - self._t_epoch
        if self._bar is not None and self._task_id is not None and trainer.val_loader is not None:
            self._bar.update(self._task_id, info="validating")

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.mode == "off" or record.get("scope") != "epoch":
            return
        line = self._summary(record)
        if self._bar is not None:
            if self._task_id is not None:
                self._bar.remove_task(self._task_id)
                self._task_id = None
                self._bar.refresh()  # redraw now, or the finished bar flashes back under the line
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        done = record["epoch"] / max(1, self._epochs)
        if 0 < done < 1:
            elapsed = time.perf_counter() - self._t_fit
            line += f"  ETA {elapsed / done * (1 - done):.0f} s"
        print(line, file=self.stream, flush=True)

    def on_fit_end(self, trainer: Any) -> None:
        if self._bar is not None:
            self._bar.stop()  # an unfinished epoch's bar stays on screen, showing where it stopped
            self._bar, self._task_id = None, None

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        self.on_fit_end(trainer)

    # ---------------------------------------------------------------- text
    def _rate(self, seconds: float) -> str:
        return f"{self._samples / max(seconds, 1e-9):,.0f} samples/s" if self._counts_samples else ""

    def _bar_info(self, trainer: Any) -> str:
        # The trainer's step log holds the loss as a float already (read with .detach()).
        loss = trainer.state.last_step_metrics.get("train/loss")
        parts = [f"loss {loss:.4f}" if loss is not None else "", self._rate(time.perf_counter() - self._t_epoch)]
        return " | ".join(p for p in parts if p)

    def _summary(self, record: dict[str, Any]) -> str:
        """`epoch 3/30  train/loss 0.1234  val/accuracy 0.9800  1,234 samples/s  (12.3 s)`."""
        parts = [f"epoch {record['epoch']}/{self._epochs}"]
        parts += [f"{k} {v:.4f}" for k, v in record.items() if "/" in k and not k.startswith("time/") and isinstance(v, float)]
        parts.append(self._rate(self._train_s))
        parts.append(f"({time.perf_counter() - self._t_epoch:.1f} s)")
        return "  ".join(p for p in parts if p)


def _steps_per_epoch(trainer: Any) -> int | None:
    """Optimizer steps in one epoch, or None for a loader without a length."""
    try:
        batches = len(trainer.train_loader)
    except TypeError:  # an iterable-style dataset
        return None
    return -(-batches // trainer.accumulate_grad_batches)


@register_callback("progress")
def progress(*, mode: Literal["auto", "bar", "lines", "off"] = "auto") -> Progress:
    """Live progress bar in a terminal (loss, samples/s, ETA), kept as one line per epoch; plain lines in logs."""
    return Progress(mode=mode)
