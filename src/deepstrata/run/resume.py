"""`strata train --resume RUN`: what may change when a run goes on, and the record of it.

Problem: a resumed run that quietly keeps an old config.yaml (the overrides given with
`--resume` never written down) is no longer re-runnable from its own files, and `--resume` on a
finished run silently restarting training destroys the result. Overrides that the restored
state overwrites (the optimizer's learning rate lives in its saved state) would also be lies.
Idea: the recipe of a resumed run is its config.yaml plus the overrides, validated like any
recipe; only the trainer section and the callbacks may change (how long and how to train, not
what), a finished run is continued only when the overrides extend its budget, config.yaml is
rewritten, and run.json keeps a `resumes` history: when, from which step, with which overrides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from deepstrata.config import Recipe, load_recipe
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.run.run_dir import CONFIG

# Recipe fields a resumed run may change: how long and how to train, never what is trained.
MAY_CHANGE = frozenset({"trainer", "callbacks", "description", "output_dir"})


def resume_recipe(run: Run, overrides: Sequence[str], checkpoint: dict[str, Any]) -> Recipe:
    """The validated recipe that `run` continues under; a one-line UserError when it may not."""
    old = run.recipe
    new = load_recipe(run.path / CONFIG, overrides)
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    for key in sorted(set(before) | set(after)):
        if key not in MAY_CHANGE and before.get(key) != after.get(key):
            path = _first_difference(key, before.get(key), after.get(key))
            raise UserError(
                f"--resume continues run '{run.path}' as it was built: '{path}' cannot change (only trainer.* and callbacks can); "
                f"start a new run to change it: strata train RECIPE.yaml --set {path}=..."
            )
    if _finished(run):
        done_epochs, done_steps = completed_epochs(run), int(checkpoint.get("trainer", {}).get("global_step", 0))
        t_old, t_new = old.trainer, new.trainer
        extends = t_new.max_epochs > t_old.max_epochs or (
            t_old.max_steps is not None and (t_new.max_steps is None or t_new.max_steps > t_old.max_steps)
        )
        room = t_new.max_epochs > done_epochs and (t_new.max_steps is None or t_new.max_steps > done_steps)
        if not (extends and room):
            raise UserError(
                f"run '{run.path}' is finished ({done_epochs} of {t_old.max_epochs} epochs, step {done_steps}); "
                f"to train it further, extend it: --resume {run.path} --set trainer.max_epochs={max(done_epochs, t_old.max_epochs) + 1}"
            )
    return new


def resume_entry(run: Run, overrides: Sequence[str], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """One item of run.json's `resumes` list: when, after how many whole epochs and steps, with what."""
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "from_epoch": completed_epochs(run),
        "from_step": int(checkpoint.get("trainer", {}).get("global_step", 0)),
        "overrides": list(overrides),
    }


def completed_epochs(run: Run) -> int:
    """Whole epochs the run has trained and validated (its last epoch record)."""
    epochs = run.history
    return int(epochs[-1].get("epoch", len(epochs))) if epochs else 0


def _finished(run: Run) -> bool:
    status = run.info.get("status")
    return status == "finished" or (status is None and run.has_model)  # runs written before `status` existed


def _first_difference(prefix: str, a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(f"{prefix}.{key}", a.get(key), b.get(key))
    return prefix
