"""End to end: the flagship recipe at its full settings, then evaluate, predict and the report.

This is the acceptance test of the foundation: the digits CNN reaches its floor on the
stratified held-out 20% test split, `evaluate` reproduces the test metrics exactly from
model.json + model.safetensors alone, `predict` agrees with the saved test predictions, and
the run directory holds exactly the artifacts the docs promise, none of them a pickle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import deepstrata as ds
from deepstrata import api
from deepstrata.run.run_dir import PREDICTIONS

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("flagship")]


@pytest.fixture(scope="module")
def flagship(tmp_path_factory: pytest.TempPathFactory) -> api.RunResult:
    out = tmp_path_factory.mktemp("runs")
    return api.train(REPO / "recipes" / "digits_cnn.yaml", [f"output_dir={out}", "trainer.progress=off"])


def test_flagship_reaches_its_floor(flagship: api.RunResult) -> None:
    assert flagship.metrics["test/accuracy"] >= 0.985


def test_run_directory_layout(flagship: api.RunResult) -> None:
    run = flagship.run_dir
    assert run.parent.name == "digits_cnn"
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoints", "model.safetensors", "model.json", "report.html", "run.json"} <= names
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.pt", "last.pt.sha256", "best.safetensors", "best.safetensors.sha256"}
    spec = json.loads((run / "model.json").read_text())
    assert spec["architecture"] == "small_cnn"
    assert spec["kwargs"]["num_classes"] == 10 and spec["kwargs"]["in_channels"] == 1
    assert spec["input_spec"]["shape"] == [1, 8, 8]
    assert spec["deepstrata_version"] == ds.__version__


def test_resolved_config_is_a_runnable_recipe(flagship: api.RunResult) -> None:
    from deepstrata.config import load_recipe

    saved = load_recipe(flagship.run_dir / "config.yaml")
    assert saved.model.kwargs["num_classes"] == 10  # inferred from the data, then recorded
    assert saved.task.name == "classification"
    original = yaml.safe_load((REPO / "recipes" / "digits_cnn.yaml").read_text())
    assert saved.optimizer.name == original["optimizer"]["name"]


def test_metrics_file_uses_split_names(flagship: api.RunResult) -> None:
    records = [json.loads(line) for line in (flagship.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["scope"] == "step"]
    epochs = [r for r in records if r["scope"] == "epoch"]
    tests = [r for r in records if r["scope"] == "test"]
    assert steps and all("train/loss" in r and "train/lr" in r for r in steps)
    assert len(epochs) == 30
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy"} <= set(epochs[-1])
    assert len(tests) == 1 and tests[0]["test/accuracy"] == flagship.metrics["test/accuracy"]
    # the cosine schedule with warm-up: LR rises, peaks at the base LR, then decays to ~0
    lrs = [r["train/lr"] for r in steps]
    assert lrs[0] < lrs[60] and max(lrs) == pytest.approx(0.003) and lrs[-1] < 1e-5


def test_evaluate_reproduces_test_metrics_exactly(flagship: api.RunResult) -> None:
    again = api.evaluate(flagship.run_dir)
    assert again.metrics["test/accuracy"] == flagship.metrics["test/accuracy"]
    assert again.metrics["test/loss"] == flagship.metrics["test/loss"]


def test_predict_matches_saved_test_predictions(flagship: api.RunResult, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from deepstrata.data.base import build_data

    data = build_data("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
    idx = np.array(data.test.indices[:20])
    raw = load_digits().images[idx]  # raw grey levels 0..16, as a user would have them
    predictor = api.load(flagship.run_dir)
    labels = [p["label"] for p in predictor.predict(raw)]
    with np.load(flagship.run_dir / PREDICTIONS, allow_pickle=False) as saved:
        assert labels == saved["y_pred"][:20].tolist()
    # and through files, as `strata predict` reads them
    np.save(tmp_path / "one.npy", raw[0])
    (result,) = predictor.predict_files([tmp_path / "one.npy"])
    assert result["label"] == labels[0] and result["class_name"] == str(labels[0])
    assert 0.0 < result["probability"] <= 1.0


def test_report_has_every_section_with_embedded_figures(flagship: api.RunResult) -> None:
    page = (flagship.run_dir / "report.html").read_text()
    for title in ("Final metrics", "Learning curves", "Training loss and learning rate per step", "Confusion matrix (test)", "Misclassified test images", "Resolved config", "Environment"):
        assert f"<h2>{title}</h2>" in page, title
    assert page.count("data:image/png;base64,") >= 3
    assert "http://" not in page and "https://" not in page  # self-contained


def test_no_pickle_in_the_artifact_path(flagship: api.RunResult) -> None:
    """safetensors and JSON for the model; the checkpoint's torch.save zip holds no code objects."""
    last = flagship.run_dir / "checkpoints" / "last.pt"
    from deepstrata.training.callbacks.checkpoint import load_checkpoint

    state = load_checkpoint(last)  # weights_only=True: refuses anything but tensors and containers
    assert set(state) >= {"model", "optimizer", "trainer"}
    with zipfile.ZipFile(last) as zf:
        pickled = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert b"c__builtin__" not in pickled and b"cos\n" not in pickled and b"deepstrata" not in pickled


def test_evaluate_refuses_a_changed_split(flagship: api.RunResult, tmp_path: Path) -> None:
    """If the data behind a run changed, evaluate says so instead of scoring other rows."""
    import shutil

    from deepstrata.errors import UserError

    copy = tmp_path / "run"
    shutil.copytree(flagship.run_dir, copy)
    info = json.loads((copy / "run.json").read_text())
    info["split"]["test_labels_sha256"] = "0" * 16
    (copy / "run.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="the test split rebuilt .* differs"):
        api.evaluate(copy)
