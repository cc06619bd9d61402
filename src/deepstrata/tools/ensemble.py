"""`strata ensemble RUN --members RUN2,RUN3`: M runs of one recipe, opened as one deep-ensemble run.

Problem: a deep ensemble (Lakshminarayanan et al. 2017) is M trainings of one recipe from
different seeds, but every command acts on one run; averaging the members by hand in each
analysis repeats the work and loses the lineage.
Idea: a transformation that checks the members belong together (the same recipe up to the seed,
the same test split, the same input preprocessing and classes) and writes a new run whose model
is the registered `ensemble` model holding every member (output: log of the mean softmax). Its
model.json names each member's registered architecture and arguments, so the run reloads from
the registry alone, and evaluate, predict, report and every tool work on it unchanged.
"""

from __future__ import annotations

from typing import Any

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase

# Recipe keys that may differ between members: the seed (that is the point), and settings that cannot
# change the trained weights (where the run was written, how progress was shown and logged).
FREE_KEYS = ("seed", "output_dir", "trainer.progress", "trainer.log_every_n_steps")
# run.json split hashes that identify the test set.
TEST_SPLIT_KEYS = ("test_indices_sha256", "test_labels_sha256")


def member_runs(run: Run, members: list[str]) -> list[Run]:
    """The runs `members` names, each checked to belong with `run`; refusals say which run and why."""
    if not members:
        raise UserError("ensemble needs the other members' run directories: --members RUN2,RUN3 (runs of the same recipe with other seeds)")
    first = _recipe_without_free_keys(run)
    opened = []
    seen = {run.path.resolve()}
    for path in members:
        member = Run.open(path)
        member.require_model()
        if member.path.resolve() in seen:
            raise UserError(f"ensemble member '{path}' is given twice (or is the first run); each member must be a different run")
        seen.add(member.path.resolve())
        different = _differences(first, _recipe_without_free_keys(member))
        if different:
            raise UserError(
                f"ensemble member '{path}' is not the same recipe as '{run.path}' up to the seed: {different}; "
                "train every member from one recipe with only --set seed=N changed"
            )
        for key in TEST_SPLIT_KEYS:
            mine, theirs = run.info.get("split", {}).get(key), member.info.get("split", {}).get(key)
            if mine != theirs:
                raise UserError(
                    f"ensemble member '{path}' was tested on another test split than '{run.path}' (run.json split.{key}: {theirs} != {mine}); "
                    "members must share one test set: use data with an official test part (mnist, fashion_mnist, a folder with test files)"
                )
        for key in ("input_spec", "class_names", "task"):
            if member.spec.get(key) != run.spec.get(key):
                raise UserError(f"ensemble member '{path}' differs from '{run.path}' in model.json '{key}'; members must read the same inputs and predict the same classes")
        opened.append(member)
    return opened


def member_spec(run: Run) -> dict[str, Any]:
    """{"architecture", "kwargs"} of a run's model, as the ensemble model's `members` lists them."""
    return {"architecture": run.spec["architecture"], "kwargs": dict(run.spec["kwargs"])}


@register_tool("ensemble", kind="transformation")
def ensemble(run: Run, *, members: list[str] = []) -> Derived:  # noqa: B006 - read, never mutated
    """Deep ensemble of this run and `members` (the same recipe with other seeds): averages their softmax outputs.

    members: run directories of the other members, e.g. --members runs/x/20260101-1200,runs/x/20260101-1300.
    """
    from deepstrata.models.ensemble import EnsembleModel

    phase(f"ensemble: checking {len(members)} other member(s)")
    others = member_runs(run, members)
    runs = [run, *others]
    model = EnsembleModel([r.model() for r in runs])
    spec = {"architecture": "ensemble", "kwargs": {"members": [member_spec(r) for r in runs]}}
    params = sum(p.numel() for p in model.parameters())
    return Derived(model=model, spec_updates=spec, metrics={"members": float(len(runs)), "params": float(params)})


def _recipe_without_free_keys(run: Run) -> dict[str, Any]:
    """config.yaml without FREE_KEYS (dotted keys reach into sections: trainer.progress)."""
    import copy

    recipe = copy.deepcopy(run.config)
    for key in FREE_KEYS:
        *parents, last = key.split(".")
        section = recipe
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(last, None)
    return recipe


def _differences(a: Any, b: Any, prefix: str = "") -> str:
    """The first few keys where two recipes differ, spelt `model.hidden: [16] != [32]`."""
    found: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else str(key))
        elif x != y:
            found.append(f"{path}: {y!r} != {x!r}")

    walk(a, b, prefix)
    return "; ".join(found[:3])
