"""TensorBoard: each numeric `<split>/<name>` of a record is a scalar at its step, read back with TensorBoard's reader.

The run-level check that TensorBoard and MLflow hold the values of metrics.jsonl is in test_mlflow.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepstrata.training.callbacks.tensorboard import scalar_items, tensorboard


def test_scalar_items_keeps_numeric_metrics_and_gives_epoch_means_of_training_their_own_tag() -> None:
    step = {"scope": "step", "step": 3, "epoch": 0, "train/loss": 0.5, "train/lr": 0.01, "event": "x", "val/flag": True}
    assert scalar_items(step) == [("train/loss", 0.5), ("train/lr", 0.01)]  # no scope/step, no text, no bool
    epoch = {"scope": "epoch", "step": 6, "train/loss": 0.4, "val/accuracy": 1, "val/loss": 0.3}
    assert scalar_items(epoch) == [("train/loss_epoch", 0.4), ("val/accuracy", 1.0), ("val/loss", 0.3)]


def test_logged_records_read_back_as_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = tensorboard(run_dir=str(tmp_path))
    assert logger.log_dir == tmp_path / "tensorboard"
    for step, loss in [(1, 0.9), (2, 0.7), (3, 0.6)]:
        logger.on_log(None, {"scope": "step", "step": step, "train/loss": loss})
    logger.on_log(None, {"scope": "epoch", "step": 3, "train/loss": 0.75, "val/loss": 0.8})
    logger.on_log(None, {"scope": "test", "step": 3, "test/accuracy": 0.5})
    logger.on_test_end(None)  # closes the writer
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, pytest.approx(0.9)), (2, pytest.approx(0.7)), (3, pytest.approx(0.6))]
    assert [(e.step, e.value) for e in events.Scalars("train/loss_epoch")] == [(3, pytest.approx(0.75))]
    assert events.Scalars("val/loss")[0].value == pytest.approx(0.8) and events.Scalars("test/accuracy")[0].value == pytest.approx(0.5)
