"""The shipped MNIST federated recipes train end to end on a subset (full-length figures: benchmarks/federated_rounds.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepstrata import api
from deepstrata.training.callbacks.metrics_logger import read_metrics
from tests.conftest import requires_shared_data

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["mnist_fedavg", "mnist_fedavg_shards", "mnist_fedavg_dirichlet", "mnist_fedprox_dirichlet"]


@pytest.mark.e2e
@requires_shared_data("mnist")
@pytest.mark.parametrize("name", RECIPES)
def test_federated_recipe_trains_on_a_subset(tmp_path: Path, name: str) -> None:
    # 5,400 training images among 20 clients, 10 per round, 2 local epochs, 4 rounds: seconds.
    overrides = [f"output_dir={tmp_path}", "data.limit=6000", "trainer.max_epochs=4", "trainer.progress=off",
                 "trainer.strategy.clients=20", "trainer.strategy.fraction=0.5", "trainer.strategy.local_epochs=2"]
    if "dirichlet" in name:
        overrides.append("trainer.strategy.split={name: dirichlet, alpha: 0.1, min_size: 20}")
    result = api.train(str(REPO / "recipes" / f"{name}.yaml"), overrides)
    epochs = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if r["scope"] == "epoch"]
    assert [e["federated/clients"] for e in epochs] == [10.0] * 4
    info = json.loads((result.run_dir / "run.json").read_text())["strategy"]
    assert info["rounds"] == 4 and info["clients"] == 20
    assert "Federated training" in (result.run_dir / "report.html").read_text()
    # Measured: 0.883 IID, 0.480 shards, 0.677 and 0.665 Dirichlet(0.1) (seed 0); chance is 0.1.
    assert epochs[-1]["val/accuracy"] > (0.75 if name == "mnist_fedavg" else 0.3)
