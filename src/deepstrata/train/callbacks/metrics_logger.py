"""The metrics file: one JSON object per logged step, epoch and test.

Problem: metrics that live only in a progress bar are lost when the terminal closes, and a
report or a comparison script needs them in a plain, appendable format.
Idea: every `trainer.log` record is appended to `metrics.jsonl` as one line, flushed at once,
with metric names as `<split>/<name>`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from deepstrata.registry import register_callback
from deepstrata.train.callbacks.base import Callback


class MetricsLogger(Callback):
    """Appends each log record to `<run_dir>/metrics.jsonl`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")


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
