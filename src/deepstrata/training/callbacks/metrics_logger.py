"""The metrics file: one JSON object per logged step, epoch and test.

Problem: metrics that live only in a progress bar are lost when the terminal closes, and a
report or a comparison script needs them in a plain, appendable format.
Idea: every `trainer.log` record is appended to `metrics.jsonl` as one line, flushed at once,
with metric names as `<split>/<name>`. On resume the file is cut back to the records written
before the checkpoint, so replayed steps are not logged twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class MetricsLogger(Callback):
    """Appends each log record to `<run_dir>/metrics.jsonl`."""

    rank_zero_only = True  # under DDP only rank 0 writes

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records = 0

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")
        self.records += 1

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = int(state.get("records", 0))
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            self.path.write_text("".join(lines[: self.records]), encoding="utf-8")


@register_callback("metrics_logger")
def metrics_logger(*, run_dir: str) -> MetricsLogger:
    """Append every logged metric to metrics.jsonl in the run directory (always on)."""
    return MetricsLogger(Path(run_dir) / "metrics.jsonl")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file, in order."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
