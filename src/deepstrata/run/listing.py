"""The runs below a folder, one summary line each: what `strata runs` prints.

Problem: after a few experiments `runs/` holds dozens of timestamped folders, some finished, some
killed, some derived by a tool, and finding the good one means opening files by hand.
Idea: find every directory holding a config.yaml, open each as a `Run` and summarise it (recipe,
start time, status, the task's key test metric, parent), turning a damaged directory into a
"damaged: <reason>" row instead of a traceback.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepstrata.errors import DeepstrataError, UserError
from deepstrata.run.run import TOOLS_DIR, Run
from deepstrata.run.run_dir import CONFIG

STAMP = "%Y%m%d-%H%M%S"  # run_dir.new_run_dir's folder name, optionally followed by -k
SKIP = {TOOLS_DIR, "checkpoints", "tensorboard"}  # folders inside a run that are not runs


@dataclass
class RunSummary:
    """One run as `strata runs` shows it; `status` is finished, interrupted, unfinished, derived or damaged: <why>."""

    run_dir: str
    recipe: str
    started: str  # "YYYY-mm-dd HH:MM:SS", local time
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory at or below `root` with a config.yaml (runs and derived runs), outside run internals."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"no folder '{root}': train a recipe first (strata train RECIPE) or pass the folder that holds your runs")
    found = []
    for config in sorted(root.rglob(CONFIG)):
        inside = config.parent.relative_to(root).parts
        if not SKIP.intersection(inside):
            found.append(config.parent)
    return found


def started(run_dir: Path) -> float:
    """The run's start as a Unix time: from its folder name (YYYYmmdd-HHMMSS[-k]), else config.yaml's mtime."""
    stamp = "-".join(run_dir.name.split("-")[:2])
    try:
        return time.mktime(time.strptime(stamp, STAMP))
    except ValueError:
        return (run_dir / CONFIG).stat().st_mtime


def key_metrics(run: Run) -> dict[str, float]:
    """The task's quality metric (and the baselines it logs beside it) from the last test record.

    Tasks that name no quality metric show their test loss, or else their first test metric.
    """
    test = run.test_metrics
    if not test:
        return {}
    try:
        quality = getattr(run.task_class, "quality", None)
    except DeepstrataError:  # a task this installation does not know: its loss still says something
        quality = None
    keys = [f"test/{quality.metric}", *(f"test/{b}" for b in quality.baselines)] if quality is not None else []
    keys = [k for k in keys if k in test] or [k for k in ("test/loss",) if k in test] or sorted(test)[:1]
    return {k: test[k] for k in keys if isinstance(test[k], (int, float)) and math.isfinite(test[k])}


def status(run: Run) -> str:
    """finished, interrupted, unfinished (still running or stopped before writing its model) or derived."""
    if not run.has_model:
        return "interrupted" if run.info.get("status") == "interrupted" else "unfinished"
    return "derived" if run.derived_from else "finished"


def summarise(run_dir: Path) -> RunSummary:
    """One run's summary; whatever is wrong with the directory becomes its status, never an exception."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started(run_dir)))
    recipe = run_dir.parent.name
    try:
        run = Run.open(run_dir)
        recipe = run.name
        made = run.derived_from or {}
        return RunSummary(str(run_dir), recipe, when, status(run), key_metrics(run), str(made["parent"]) if made.get("parent") else None)
    except Exception as error:  # noqa: BLE001 - a damaged run is a row, not a crash of the listing
        reason = " ".join(str(error).split()) or type(error).__name__
        return RunSummary(str(run_dir), recipe, when, f"damaged: {reason}")


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    """Summaries of every run below `root`, oldest first."""
    dirs = find_run_dirs(root)
    return [summarise(d) for d in sorted(dirs, key=lambda d: (started(d), str(d)))]
