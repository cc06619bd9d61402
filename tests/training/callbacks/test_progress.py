"""Progress on a terminal: one summary line per epoch stays on screen, `epoch k/N`, no warnings.

The bar is written to a fake terminal (a StringIO that says it is a TTY, so rich draws its live
display with control codes) and the final screen is rebuilt from those codes, as a terminal
would show it after the run.
"""

from __future__ import annotations

import io
import re
import warnings

import pytest
import torch
from tests.training.engine_helpers import tiny

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.progress import Progress
from deepstrata.training.trainer import Trainer

SUMMARY = re.compile(r"^epoch (\d+)/(\d+)  train/loss \d+\.\d{4}  val/loss \d+\.\d{4}(  [\d,]+ samples/s)?  \(\d+\.\d s\)$")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(raw: str) -> list[str]:
    """The non-empty lines a terminal shows after `raw` (text, \\r, \\n, erase-line, cursor-up)."""
    lines, row, col = [""], 0, 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", raw):
        if token == "\n":
            row, col = row + 1, 0
        elif token == "\r":
            col = 0
        elif token == "\x1b[2K":
            lines[row] = ""
        elif up := re.fullmatch(r"\x1b\[(\d*)A", token):
            row = max(0, row - int(up.group(1) or 1))
        elif token.startswith("\x1b") or not token:
            continue  # colours, cursor visibility
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
        lines.extend("" for _ in range(row + 1 - len(lines)))
    return [line.rstrip() for line in lines if line.strip()]


def fit(progress: Progress, *more: Callback, epochs: int = 3, max_steps: int | None = None, counts_samples: bool | None = None) -> None:
    task, train, val = tiny()
    if counts_samples is not None:
        task.counts_samples = counts_samples
    trainer = Trainer(max_epochs=epochs, max_steps=max_steps, callbacks=[progress, *more])
    trainer.fit(task, train, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.1))


def test_every_epoch_keeps_one_summary_line_on_a_terminal() -> None:
    tty = FakeTTY()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(Progress(mode="auto", stream=tty))
    assert [str(w.message) for w in caught] == []  # torch used to warn: float() of a loss that requires grad
    shown = screen(tty.getvalue())
    assert len(shown) == 3, shown
    assert [SUMMARY.match(line).groups()[:2] for line in shown] == [("1", "3"), ("2", "3"), ("3", "3")], shown
    assert all("samples/s" in line for line in shown)  # classification counts samples


class RedrawEachStep(Callback):
    """rich redraws 10 times a second, slower than these steps: draw the bar after each one."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_train_batch_end(self, trainer: Trainer, output: object) -> None:
        self.progress._bar.refresh()


def test_the_live_bar_shows_epoch_k_of_n_and_steps_k_of_n() -> None:
    tty = FakeTTY()
    progress = Progress(mode="auto", stream=tty)
    fit(progress, RedrawEachStep(progress), epochs=2)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tty.getvalue())
    assert re.search(r"epoch 2/2 \S* +6/6 loss \d\.\d{4} \| [\d,]+ samples/s", text), text  # 96 samples, batches of 16


def test_max_steps_sets_the_number_of_epochs_shown() -> None:
    tty = FakeTTY()
    fit(Progress(mode="bar", stream=tty), epochs=10, max_steps=8)  # 6 steps per epoch: 2 epochs
    assert [SUMMARY.match(line).groups()[:2] for line in screen(tty.getvalue())] == [("1", "2"), ("2", "2")]


@pytest.mark.parametrize("mode", ["bar", "lines"])
def test_no_samples_per_second_where_batch_size_is_not_a_sample_count(mode: str) -> None:
    stream = FakeTTY() if mode == "bar" else io.StringIO()
    fit(Progress(mode=mode, stream=stream), epochs=2, counts_samples=False)
    assert "samples/s" not in stream.getvalue()
    assert "loss" in stream.getvalue()


def test_lines_in_a_log_are_the_summary_plus_an_eta() -> None:
    log = io.StringIO()
    fit(Progress(mode="auto", stream=log))
    lines = log.getvalue().strip().splitlines()
    assert [SUMMARY.match(re.sub(r"  ETA \d+ s$", "", line)).group(1) for line in lines] == ["1", "2", "3"]
    assert lines[0].endswith(" s") and "ETA" in lines[0] and "ETA" not in lines[-1]
    assert "\x1b" not in log.getvalue()


def test_off_is_silent() -> None:
    tty = FakeTTY()
    fit(Progress(mode="off", stream=tty), epochs=1)
    assert tty.getvalue() == ""
