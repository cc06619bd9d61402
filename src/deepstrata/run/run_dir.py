"""Where a run keeps what it produced: `runs/<recipe>/<timestamp>/`.

Problem: results scattered over the working directory are overwritten by the next run and
cannot be traced back to the settings that made them.
Idea: every run gets its own directory named by recipe and start time, holding the resolved
config, the metrics file, checkpoints, the saved model and the report.
The recipe name becomes a folder, so it must be one safe path component (`SAFE_NAME`): a name
like `../x` would write outside `output_dir`. config.py's Recipe enforces it; `new_run_dir`
checks again, so no other caller can get around it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from deepstrata.config import SAFE_NAME_RULE, is_safe_name  # the recipe validates `name` by it; checked again here
from deepstrata.errors import UserError

CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
REPORT = "report.html"
PREDICTIONS = "test_predictions.npz"


def new_run_dir(output_dir: str | Path, recipe_name: str) -> Path:
    """Create and return a fresh `output_dir/recipe_name/YYYYmmdd-HHMMSS[-k]` directory."""
    base = Path(output_dir) / recipe_name
    inside = os.path.dirname(os.path.abspath(base)) == os.path.abspath(output_dir)  # one level below, lexically
    if not is_safe_name(recipe_name) or not inside:
        raise UserError(f"recipe name {recipe_name!r} cannot name a run folder under '{output_dir}': use {SAFE_NAME_RULE}")
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
