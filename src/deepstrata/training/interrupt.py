"""Ctrl-C and SIGTERM during training: stop at a step boundary, keep a checkpoint, say how to resume.

Problem: an interrupt that kills training wherever it lands loses the work since the last
checkpoint, can leave weights half-updated, and (caught and ignored) ends the process with exit
code 0, so `strata train ... && next` carries on as if the run had finished.
Idea: the first SIGINT/SIGTERM only raises a flag; the trainer finishes the optimizer step it is
in (or abandons a validation pass), then raises `TrainingInterrupted`, the checkpoint callback
writes `last.pt` at that clean boundary, and the CLI prints one line and exits 130 (SIGINT) or
143 (SIGTERM), the shell's convention. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from deepstrata.errors import DeepstrataError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(DeepstrataError):
    """Training stopped on a signal. `exit_code` is 128 + the signal number (130, 143)."""

    label = ""  # the CLI prints "interrupted at epoch E step S; resume with: ..." as it is

    def __init__(self, signum: int, *, epoch: int, step: int, immediate: bool = False, run_dir: Any = None):
        self.signum, self.epoch, self.step, self.immediate, self.run_dir = signum, epoch, step, immediate, run_dir
        self.exit_code = 128 + signum
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"interrupted at epoch {self.epoch + 1} step {self.step}"
        if self.immediate:
            where += " (stopped at once: the last checkpoint is the one written before)"
        if self.run_dir is None:
            return where
        return f"{where}; resume with: strata train --resume {self.run_dir}"

    def in_run(self, run_dir: Any) -> TrainingInterrupted:
        """The same interrupt, now naming the run directory to resume."""
        return TrainingInterrupted(self.signum, epoch=self.epoch, step=self.step, immediate=self.immediate, run_dir=run_dir)


@contextlib.contextmanager
def interruptible(trainer: Any) -> Iterator[None]:
    """Route SIGINT/SIGTERM to `trainer.interrupted` inside the block; restore the handlers after.

    Only the main thread can install signal handlers; elsewhere (a notebook's worker thread)
    the block runs with the process's own handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if trainer.interrupted:  # the second signal: stop now
            s = trainer.state
            raise TrainingInterrupted(signum, epoch=s.epoch, step=s.global_step, immediate=True)
        trainer.interrupted = signum

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
