"""`finetune`: a new recipe trained from a finished run's weights under a named strategy.

Problem: fine-tuning by hand means rebuilding the old architecture, loading its weights,
swapping the head, and setting frozen layers and learning rates, all outside the recipe,
so the run cannot be reproduced from its own config.
Idea: rewrite the new recipe instead: its model becomes the run's architecture (classes
counted from the new data), a `pretrained` callback copies the run's weights into the body
before step 1 (the head stays new), and the strategy adds its parameter groups and
callbacks. The fine-tuned run's config.yaml records all of it; its model.json is an ordinary
model that loads without the source run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepstrata.config import Recipe, load_recipe
from deepstrata.errors import UserError
from deepstrata.registry import registry

# Model arguments the new data decides; the run's values for them are dropped.
FROM_DATA = ("num_classes",)


def finetune_recipe(
    run_dir: str | Path,
    recipe: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
    *,
    strategy: str = "fine_tuning",
    head_lr: float = 1e-3,
    body_lr: float = 1e-4,
) -> Recipe:
    """The recipe that fine-tunes `run_dir`'s model on `recipe`'s data with `strategy`.

    `strategy` is a registered fine-tuning strategy (`strata list finetune_strategies`).
    """
    from deepstrata.run.run import Run

    plan = registry("finetune_strategy").get(strategy)(head_lr=head_lr, body_lr=body_lr)
    source = Run.open(run_dir)
    source.require_model()
    run_dir, spec = source.path, source.spec
    base = load_recipe(recipe, overrides)
    if base.model.name != spec["architecture"]:
        raise UserError(
            f"the new recipe's model is '{base.model.name}' but run '{run_dir}' trained '{spec['architecture']}'; "
            f"fine-tuning keeps the run's architecture: set model.name={spec['architecture']} in the recipe"
        )
    raw = base.model_dump(mode="json")
    raw["model"] = {"name": spec["architecture"], **{k: v for k, v in spec["kwargs"].items() if k not in FROM_DATA}}
    raw["optimizer"]["param_groups"] = plan.param_groups + list(raw["optimizer"].get("param_groups") or [])
    raw["callbacks"] = [{"name": "pretrained", "source": str(run_dir)}, *plan.callbacks, *raw.get("callbacks", [])]
    raw["description"] = f"{raw.get('description', '')} [fine-tuned from {run_dir} with {strategy}]".strip()
    return load_recipe(raw)


def finetune(
    run_dir: str | Path,
    recipe: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
    *,
    strategy: str = "fine_tuning",
    head_lr: float = 1e-3,
    body_lr: float = 1e-4,
) -> Any:
    """Train `recipe` starting from `run_dir`'s weights with a new head; returns the RunResult."""
    from deepstrata.api import train

    return train(finetune_recipe(run_dir, recipe, overrides, strategy=strategy, head_lr=head_lr, body_lr=body_lr))
