"""Where a run keeps what it produced: `runs/<recipe>/<timestamp>/`.

Problem: results scattered over the working directory are overwritten by the next run and
cannot be traced back to the settings that made them.
Idea: every run gets its own directory named by recipe and start time, holding the resolved
config, the metrics file, checkpoints, the saved model and the report.
"""

from __future__ import annotations

import time
from pathlib import Path

CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
REPORT = "report.html"
PREDICTIONS = "test_predictions.npz"


def new_run_dir(output_dir: str | Path, recipe_name: str) -> Path:
    """Create and return a fresh `output_dir/recipe_name/YYYYmmdd-HHMMSS[-k]` directory."""
    base = Path(output_dir) / recipe_name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        candidate = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        (candidate / "checkpoints").mkdir()
        return candidate
    raise RuntimeError(f"could not create a run directory under {base}")
