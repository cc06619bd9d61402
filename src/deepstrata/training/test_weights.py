"""Which weights the test split scores: the last epoch's, or the best validated epoch's.

Problem: testing whatever the last epoch left behind reports a model the user never chose (a
late epoch may have overfitted), while the report and `evaluate` said nothing about which
weights produced the test metrics.
Idea: `trainer.test_weights: best | last`. With `best`, the weights the checkpoint callback kept
as `checkpoints/best.safetensors` (the epoch with the best `trainer.monitor`) are loaded before
testing and saved as the run's model; either way run.json records which epoch the tested
weights come from, and the report and `strata evaluate` say it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from deepstrata.errors import UserError

BEST = "best.safetensors"


def best_epoch(epochs: list[dict[str, Any]], monitor: str, mode: str) -> int | None:
    """The epoch number (1-based, as in metrics.jsonl) with the best finite `monitor` value; ties: the first."""
    best: tuple[float, int] | None = None
    for record in epochs:
        value = record.get(monitor)
        if value is None or not math.isfinite(float(value)):
            continue
        better = best is None or (float(value) < best[0] if mode == "min" else float(value) > best[0])
        if better:
            best = (float(value), int(record["epoch"]))
    return None if best is None else best[1]


def select_test_weights(model: nn.Module, run_dir: Path, trainer_spec: Any, epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """Load the chosen weights into `model` (in place); return run.json's `tested_weights` entry."""
    last = int(epochs[-1]["epoch"]) if epochs else 0
    if trainer_spec.test_weights == "last":
        return {"which": "last", "epoch": last}
    chosen = best_epoch(epochs, trainer_spec.monitor, trainer_spec.monitor_mode)
    path = Path(run_dir) / "checkpoints" / BEST
    if chosen is None or not path.is_file():
        raise UserError(
            f"trainer.test_weights=best needs a validated epoch with a finite {trainer_spec.monitor}, and none was written; "
            "set data.val_fraction > 0 or trainer.test_weights=last"
        )
    from safetensors.torch import load_file

    from deepstrata.run.integrity import verify

    verify(path, remedy="train the run again")  # the tested weights are checked like every other read
    model.load_state_dict(load_file(str(path)))
    return {"which": "best", "epoch": chosen, "monitor": trainer_spec.monitor, "value": next(r[trainer_spec.monitor] for r in epochs if r["epoch"] == chosen)}


def describe(tested: dict[str, Any] | None) -> str:
    """"epoch 7 of 10 (best val/accuracy 0.9861)" or "epoch 10 (last)"; "" for runs that did not record it."""
    if not tested:
        return ""
    if tested.get("which") == "best":
        return f"epoch {tested['epoch']} (best {tested['monitor']} {tested['value']:.4f})"
    return f"epoch {tested['epoch']} (last)"
