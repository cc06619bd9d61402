"""reduce_on_plateau in a real run: the schedule hears the validation metric and the logged LR drops."""

from __future__ import annotations

import pytest

from deepstrata import api
from deepstrata.training.callbacks.metrics_logger import read_metrics


@pytest.mark.e2e
def test_plateau_schedule_cuts_the_logged_lr_after_a_bad_validation(tiny_recipe: dict) -> None:
    tiny_recipe["trainer"]["max_epochs"] = 3
    tiny_recipe["model"] = {"name": "mlp", "in_features": 64, "hidden": [32]}
    # threshold=10: no validation after the first can count as an improvement; patience 0 cuts at once.
    tiny_recipe["scheduler"] = {"name": "reduce_on_plateau", "monitor": "val/loss", "factor": 0.5, "patience": 0, "threshold": 10.0}
    run_dir = api.train(tiny_recipe).run_dir
    records = read_metrics(run_dir / "metrics.jsonl")
    lr_by_epoch = {}
    for r in records:
        if r["scope"] == "step":
            lr_by_epoch.setdefault(r["epoch"], set()).add(r["train/lr"])
    assert lr_by_epoch == {0: {0.01}, 1: {0.01}, 2: {0.005}}
