"""Classical baselines: fitted on exactly the recipe's split, scored honestly, shown in the report."""

from __future__ import annotations

import json

import pytest

from deepstrata.baselines.classical import fit_baselines
from deepstrata.errors import UserError


def test_split_is_exactly_the_one_build_experiment_makes():
    from deepstrata.config import load_recipe
    from deepstrata.experiment import build_experiment

    recipe = {"name": "iris_mlp", "seed": 3, "data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]}}
    results, split = fit_baselines(recipe, models=["logistic_regression"])
    exp = build_experiment(load_recipe(recipe))
    assert {k: v for k, v in split.items() if k in exp.data.split} == exp.data.split
    assert split["test_size"] == len(exp.data.test)


def test_classification_baselines_score_well_on_iris():
    results, _ = fit_baselines({"name": "iris", "data": {"name": "iris"}, "model": {"name": "mlp"}}, models=["logistic_regression", "knn", "svm_rbf"])
    assert [r.model for r in results] == ["logistic_regression", "knn", "svm_rbf"]
    assert all(r.metric == "accuracy" and r.value >= 0.9 and r.fit_time_s >= 0 for r in results), results


def test_regression_baselines_report_rmse_and_r2_on_diabetes():
    results, _ = fit_baselines({"name": "diabetes", "data": {"name": "diabetes"}, "model": {"name": "mlp"}}, models=["linear_regression"])
    (lin,) = results
    assert lin.metric == "rmse" and 45 < lin.value < 70 and lin.r2 > 0.3  # diabetes: R^2 of a linear model is about 0.3-0.5


def test_unknown_baseline_is_explained():
    with pytest.raises(UserError, match="unknown classification baseline 'knm'; did you mean knn"):
        fit_baselines({"name": "iris", "data": {"name": "iris"}, "model": {"name": "mlp"}}, models=["knm"])


@pytest.mark.e2e
def test_strata_baseline_writes_beside_a_run_and_the_report_compares(tmp_path):
    from deepstrata import api
    from deepstrata.cli.main import main

    recipe_path = tmp_path / "iris.yaml"
    recipe_path.write_text(
        "name: iris_mlp\nseed: 0\ndata: {name: iris, batch_size: 16}\nmodel: {name: mlp, hidden: [16]}\n"
        f"optimizer: {{name: adamw, lr: 0.02}}\ntrainer: {{max_epochs: 15, num_threads: 1, progress: 'off'}}\noutput_dir: {tmp_path / 'runs'}\n"
    )
    run = api.train(recipe_path)
    assert main(["baseline", str(recipe_path), "--run", str(run.run_dir), "--models", "logistic_regression,knn"]) == 0
    data = json.loads((run.run_dir / "baselines.json").read_text())
    assert [r["model"] for r in data["results"]] == ["logistic_regression", "knn"]
    page = (run.run_dir / "report.html").read_text()
    assert "Classical baselines (same split)" in page and "logistic_regression" in page
    assert any(w in page for w in ("beats the deep model", "ties the deep model", "deep model beats every"))
    assert main(["baseline", str(recipe_path), "--run", str(tmp_path)]) == 2  # not a run directory
