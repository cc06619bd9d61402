"""`strata calibrate`: a derived run that serves calibrated probabilities, and `strata calibration`'s table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.learned.temperature import TemperatureScaler
from deepstrata.metrics.calibration import expected_calibration_error
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool, saved_learned
from deepstrata.tools.predictions import split_logits
from tests.conftest import requires_shared_data

pytestmark = [pytest.mark.xdist_group("tools"), pytest.mark.e2e]

# Trained hard with no regularisation on digits: overconfident, as the recipes made for calibration.
RECIPE = {
    "name": "calib_tiny",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.25},
    "model": {"name": "small_cnn", "widths": [8, 16], "dropout": 0.0},
    "optimizer": {"name": "adam", "lr": 0.01},
    "trainer": {"max_epochs": 15, "progress": "off", "test_weights": "last"},
    "metrics": ["accuracy", "ece"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calib_runs")
    return api.train({**RECIPE, "output_dir": str(out / "runs")}).run_dir


def test_real_predictions_ece_equals_torchmetrics(trained: Path) -> None:
    z, y = split_logits(Run.open(trained), "test")
    theirs = multiclass_calibration_error(z.softmax(1), y, num_classes=10, n_bins=15, norm="l1")
    assert abs(expected_calibration_error(z.softmax(1), y) - float(theirs)) < 1e-6
    # the registered `ece` metric of the recipe is torchmetrics' on the same test split
    assert Run.open(trained).test_metrics["test/ece"] == pytest.approx(float(theirs), abs=1e-6)


def test_temperature_writes_a_run_that_serves_calibrated_probabilities(trained: Path) -> None:
    result = apply_tool("calibrate", trained, method="temperature")
    m = result.metrics
    assert m["test/accuracy"] == m["test/accuracy_before"]  # a temperature never moves the argmax
    assert m["calibration/temperature"] > 1  # the trained-out CNN is overconfident
    assert m["val/nll"] <= m["val/nll_before"]  # fitted there; on 360 test digits it may go either way
    derived = Run.open(result.run_dir)
    assert derived.architecture == "calibrated" and derived.parent is not None
    # evaluate, predictor and the logits all use the calibrated model: equal to the tool's numbers
    evaluated = derived.evaluate("test")
    assert evaluated["test/accuracy"] == pytest.approx(m["test/accuracy"], abs=1e-7)  # torchmetrics: float32
    assert evaluated["test/ece"] == pytest.approx(m["test/ece"], abs=1e-6)
    parent_z, _ = split_logits(Run.open(trained), "test")
    z, _ = split_logits(derived, "test")
    torch.testing.assert_close(z, parent_z / m["calibration/temperature"], rtol=1e-5, atol=1e-5)
    x = derived.split("test")[0][0][None]
    probs = derived.predictor().task.predict(x)["probabilities"]
    torch.testing.assert_close(probs, (parent_z[:1] / m["calibration/temperature"]).softmax(1), rtol=1e-5, atol=1e-5)
    assert (result.run_dir / "report.html").is_file()


@pytest.mark.parametrize("method", ["vector", "histogram", "isotonic"])
def test_every_multiclass_method_writes_a_run_that_reloads_to_the_same_outputs(trained: Path, method: str) -> None:
    result = apply_tool("calibrate", trained, method=method)
    derived = Run.open(result.run_dir)
    assert derived.spec["calibration"]["method"] == method
    assert derived.evaluate("test")["test/accuracy"] == pytest.approx(result.metrics["test/accuracy"], abs=1e-7)
    assert result.metrics["val/nll"] < result.metrics["val/nll_before"]


def test_unknown_method_platt_on_ten_classes_and_missing_val_split(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown method 'temprature'; did you mean temperature"):
        apply_tool("calibrate", trained, method="temprature")
    with pytest.raises(UserError, match="binary classifiers"):
        apply_tool("calibrate", trained, method="platt")
    no_val = api.train({**RECIPE, "data": {**RECIPE["data"], "val_fraction": 0.0}, "trainer": {**RECIPE["trainer"], "max_epochs": 1, "monitor": "train/loss"}, "output_dir": str(tmp_path / "runs")}).run_dir
    with pytest.raises(UserError, match="no validation split"):
        apply_tool("calibrate", no_val)


def test_calibration_analysis_compares_every_method_and_cli_json(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibration", str(trained), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"]
    for method in ("uncalibrated", "temperature", "vector", "histogram", "isotonic"):
        assert {f"test/{method}/ece", f"test/{method}/nll", f"test/{method}/accuracy"} <= set(metrics)
    assert "test/platt/ece" not in metrics  # ten classes: Platt does not apply
    assert metrics["test/temperature/accuracy"] == metrics["test/uncalibrated/accuracy"]
    saved = Run.open(trained).latest_tool_result("calibration")
    assert saved is not None and "reliability_uncalibrated.png" in saved["figures"]
    # the fitted recalibrators are saved with the result; the temperature reloads as fitted
    temperature = saved_learned(trained, "calibration", "temperature_scaling")
    z, y = split_logits(Run.open(trained), "val")
    assert isinstance(temperature, TemperatureScaler) and temperature.temperature_ == pytest.approx(TemperatureScaler().fit(z, y).temperature_, rel=1e-9)
    assert main(["calibrate", str(trained), "--method", "temperature", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"test/ece_before", "test/ece", "test/nll_before", "test/nll"} <= set(out["metrics"])


def test_the_trust_section_shows_the_analysis_and_a_calibrated_runs_before_and_after(trained: Path) -> None:
    from deepstrata.report import build_report

    apply_tool("calibration", trained)
    page = Path(build_report(Run.open(trained))).read_text()
    assert "Trust: calibration, uncertainty, OOD, robustness" in page and "reliability_uncalibrated.png" in page
    assert "<h3>calibration</h3>" not in page.split("Tool results")[-1] if "Tool results" in page else True
    derived = apply_tool("calibrate", trained, method="temperature").run_dir
    page = Path(build_report(Run.open(derived))).read_text()
    assert "calibrated by temperature (fitted on the validation split)" in page and "ECE (15 bins)" in page


REPO = Path(__file__).resolve().parents[2]


@requires_shared_data("mnist")
@requires_shared_data("fashion_mnist")
@pytest.mark.parametrize("recipe", ["mnist_lenet_overconfident", "fashion_lenet_overconfident", "fashion_lenet"])
def test_the_calibration_recipes_train_and_temperature_scaling_keeps_accuracy(recipe: str, tmp_path: Path) -> None:
    """Short versions (6,000 images, 3 epochs) of the recipes docs/trust.md measures in full."""
    overrides = ["data.limit=6000", "trainer.max_epochs=3", "trainer.progress=off", "trainer.num_threads=1", f"output_dir={tmp_path}"]
    run_dir = api.train(REPO / "recipes" / f"{recipe}.yaml", overrides).run_dir
    m = apply_tool("calibrate", run_dir, method="temperature").metrics
    assert m["test/accuracy"] == m["test/accuracy_before"] > (0.9 if recipe.startswith("mnist") else 0.7)
    assert m["val/nll"] <= m["val/nll_before"]


def test_every_tool_walks_a_split_one_way(trained: Path) -> None:
    """labelled_batches: the first `limit` examples, hard labels; input_tensor and split_logits agree with it."""
    from deepstrata.tools.predictions import input_tensor, labelled_batches

    run = Run.open(trained)
    batches = list(labelled_batches(run, "test", limit=45))
    assert sum(len(y) for _, y in batches) == 45 and all(y.dtype == torch.long and y.dim() == 1 for _, y in batches)
    x, y = input_tensor(run, "test", limit=45, tool="t")
    z, y2 = split_logits(run, "test", limit=45)
    assert x.shape[0] == z.shape[0] == 45 and torch.equal(y, y2)
    with torch.no_grad():
        torch.testing.assert_close(run.model().eval()(x), z)
    full_z, full_y = split_logits(run, "test")
    assert torch.equal(full_y[:45], y) and len(full_y) == len(run.split("test"))


def test_an_empty_split_is_one_user_error_that_says_what_to_do() -> None:
    from types import SimpleNamespace

    from deepstrata.tools.predictions import input_tensor, labelled_batches

    empty = SimpleNamespace(path="runs/x/1", task=lambda: None, loader=lambda split: [])
    with pytest.raises(UserError, match=r"the val split of 'runs/x/1' is empty; choose another split with --split"):
        list(labelled_batches(empty, "val"))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="the data of 'runs/x/1' is empty"):
        input_tensor(empty, loader=[], tool="attack")  # type: ignore[arg-type]
