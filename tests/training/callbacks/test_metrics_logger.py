"""The metrics file: one JSON line per logged record, read back in order; a resume cuts it back to the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tests.training.engine_helpers import Recorder, tiny

from deepstrata.training.callbacks.metrics_logger import MetricsLogger, metrics_logger, read_metrics
from deepstrata.training.trainer import Trainer


def test_every_record_of_a_fit_is_one_json_line_read_back_in_order(tmp_path: Path) -> None:
    task, loader, val = tiny(0)
    path = tmp_path / "metrics.jsonl"
    rec = Recorder()
    Trainer(max_epochs=2, callbacks=[MetricsLogger(path), rec]).fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.1))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rec.records) == 2 * 6 + 2  # 6 steps and one epoch record per epoch
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert read_metrics(path) == json.loads(json.dumps(rec.records))  # the same records, in the same order
    steps = [r["step"] for r in read_metrics(path) if r["scope"] == "step"]
    assert steps == list(range(1, 13))
    assert {"val/loss", "train/loss"} <= set(next(r for r in read_metrics(path) if r["scope"] == "epoch"))


def test_non_finite_values_are_written_as_null_and_a_resume_cuts_the_file_back(tmp_path: Path) -> None:
    logger = metrics_logger(run_dir=str(tmp_path))
    assert logger.path == tmp_path / "metrics.jsonl"
    assert read_metrics(logger.path) == []  # no file yet
    for step, loss in enumerate([0.5, float("nan"), float("inf"), 0.25], start=1):
        logger.on_log(None, {"scope": "step", "step": step, "train/loss": loss})
    assert [r["train/loss"] for r in read_metrics(logger.path)] == [0.5, None, None, 0.25]  # valid JSON, no NaN token
    assert "NaN" not in logger.path.read_text(encoding="utf-8")

    saved = {"records": 2}  # a checkpoint written after the second record
    resumed = MetricsLogger(logger.path)
    resumed.load_state_dict(saved)
    assert [r["step"] for r in read_metrics(logger.path)] == [1, 2]  # the replayed records are not kept twice
    resumed.on_log(None, {"scope": "step", "step": 3, "train/loss": 0.4})
    assert [r["step"] for r in read_metrics(logger.path)] == [1, 2, 3]
    assert resumed.state_dict() == {"records": 3}
