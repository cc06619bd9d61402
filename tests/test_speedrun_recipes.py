"""The speedrun recipes (issue 20) train as normal recipes; short versions keep honest floors.

Full-length figures (5 seeds, wall time, the plain-script comparison) come from
`benchmarks/speedrun.py`; here digits runs in full and MNIST / Fashion-MNIST on 6,000
training images for 2 epochs, scored on the official 10,000-image test sets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepstrata.api import train
from tests.conftest import requires_shared_data

REPO = Path(__file__).resolve().parents[1]


def _train(name: str, tmp_path: Path, *overrides: str):
    result = train(REPO / "recipes" / f"{name}.yaml", [*overrides, "trainer.progress=off", f"output_dir={tmp_path}"])
    info = json.loads((Path(result.run_dir) / "run.json").read_text())
    return result.metrics, info


@pytest.mark.e2e
def test_digits_speedrun_in_full(tmp_path: Path) -> None:
    metrics, info = _train("digits_speedrun", tmp_path)
    # Seeds 0-4 measured 0.983-0.994 (benchmarks/speedrun.py); 360 test images, so 0.975 allows 9 errors.
    assert metrics["test/accuracy"] >= 0.975, metrics
    assert info["timing"]["call_to_fit_s"] < info["timing"]["call_to_test_s"]


@pytest.mark.e2e
@requires_shared_data("mnist")
def test_mnist_speedrun_short(tmp_path: Path) -> None:
    metrics, _ = _train("mnist_speedrun", tmp_path, "data.limit=6000", "trainer.max_epochs=2")
    # Measured 0.935-0.946 over seeds 0-2 at these settings.
    assert metrics["test/accuracy"] >= 0.92, metrics


@pytest.mark.e2e
@requires_shared_data("fashion_mnist")
def test_fashion_speedrun_short(tmp_path: Path) -> None:
    metrics, _ = _train("fashion_speedrun", tmp_path, "data.limit=6000", "trainer.max_epochs=2")
    # Measured 0.755-0.760 over seeds 0-2 at these settings.
    assert metrics["test/accuracy"] >= 0.73, metrics
