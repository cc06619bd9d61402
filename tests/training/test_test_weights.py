"""trainer.test_weights: the test split scores the best validated epoch's weights or the last ones, and says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepstrata import api
from deepstrata.run.run import Run
from deepstrata.training.test_weights import best_epoch, describe
from tests.conftest import TINY_RECIPE


def test_best_epoch_takes_the_first_best_finite_value() -> None:
    epochs = [{"epoch": 1, "val/acc": 0.5}, {"epoch": 2, "val/acc": 0.9}, {"epoch": 3, "val/acc": float("nan")}, {"epoch": 4, "val/acc": 0.9}]
    assert best_epoch(epochs, "val/acc", "max") == 2
    assert best_epoch(epochs, "val/acc", "min") == 1
    assert best_epoch([{"epoch": 1}], "val/acc", "max") is None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    # A high learning rate makes validation accuracy wander, so the best epoch is usually not the last.
    sets = ["trainer.max_epochs=5", "optimizer.lr=0.05", "data.batch_size=32"]
    return {which: api.train({**TINY_RECIPE, "output_dir": str(out)}, [*sets, f"trainer.test_weights={which}"]).run_dir for which in ("best", "last")}


def test_best_tests_and_saves_the_weights_of_the_best_validated_epoch(runs: dict[str, Path]) -> None:
    run = Run.open(runs["best"])
    chosen = best_epoch(run.history, "val/accuracy", "max")
    assert run.tested_weights["which"] == "best" and run.tested_weights["epoch"] == chosen
    saved, best = load_file(run.path / "model.safetensors"), load_file(run.path / "checkpoints" / "best.safetensors")
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert run.evaluate("test") == run.test_metrics  # evaluate scores exactly what was tested
    page = (run.path / "report.html").read_text()
    assert f"Test metrics from the weights of epoch {chosen} (best val/accuracy" in page


def test_last_tests_the_final_weights_and_says_so(runs: dict[str, Path]) -> None:
    run = Run.open(runs["last"])
    assert run.tested_weights == {"which": "last", "epoch": 5}
    assert describe(run.tested_weights) == "epoch 5 (last)"
    assert run.evaluate("test") == run.test_metrics


def test_the_two_choices_differ_only_when_the_best_epoch_is_not_the_last(runs: dict[str, Path]) -> None:
    best, last = Run.open(runs["best"]), Run.open(runs["last"])
    def curves(run: Run) -> list[dict]:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in run.history]

    assert curves(best) == curves(last)  # the same training, to the bit: only the tested weights differ
    same = best.tested_weights["epoch"] == 5
    assert (best.test_metrics == last.test_metrics) == same


def test_evaluate_prints_which_weights(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from deepstrata.cli.main import main

    assert main(["evaluate", str(runs["best"])]) == 0
    info = json.loads((runs["best"] / "run.json").read_text())["tested_weights"]
    assert f"weights: epoch {info['epoch']} (best val/accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("trainer", "val_fraction", "expected"),
    [
        ({"monitor": "val/accuracy", "monitor_mode": "max"}, 0.1, "best"),  # the recipe said what best means
        ({}, 0.1, "last"),  # no monitor named: the default val/loss is a checkpoint detail, not a choice
        ({"monitor": "train/loss"}, 0.0, "last"),  # nothing validated to choose from
        ({"monitor": "val/loss"}, 0.0, "last"),
        ({"monitor": "val/loss", "test_weights": "last"}, 0.1, "last"),
    ],
)
def test_the_default_is_best_only_when_the_recipe_names_a_validation_monitor(trainer: dict, val_fraction: float, expected: str) -> None:
    from deepstrata.config import load_recipe

    recipe = load_recipe({**TINY_RECIPE, "data": {**TINY_RECIPE["data"], "val_fraction": val_fraction}, "trainer": {"max_epochs": 1, **trainer}})
    assert recipe.trainer.test_weights == expected
    assert load_recipe(recipe).trainer.test_weights == expected  # config.yaml keeps the resolved choice
