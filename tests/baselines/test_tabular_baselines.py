"""Classical baselines on mixed tables: categories one-hot for linear models, native for gradient boosting; AUROC reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepstrata.baselines.classical import _models, categorical_columns, fit_baselines
from tests.data.test_adult import TRAIN_ROWS, write_adult


def test_categories_reach_each_model_the_way_it_reads_them() -> None:
    """label = 1 for codes {1, 3} of a 5-level column: no threshold on the code separates it, one-hot does."""
    rng = np.random.default_rng(0)
    code = rng.integers(0, 5, 600).astype(float)
    x = np.stack([rng.normal(size=600), code], axis=1)
    y = np.isin(code, [1, 3]).astype(int)
    tab = _models(True, 600, 0, n_features=2, categorical=[1])
    plain = _models(True, 600, 0)
    assert tab["gradient_boosting"].categorical_features == [1]
    assert tab["logistic_regression"].fit(x, y).score(x, y) == 1.0
    assert plain["logistic_regression"].fit(x, y).score(x, y) < 0.7  # the code read as a number
    assert categorical_columns({"columns": ["a", "b", "c"], "categories": {"c": ["x", "<unseen>"], "b": ["y"]}}) == [2, 1]
    assert categorical_columns({"features": ["a"]}) == []


def test_adult_recipe_baselines_report_accuracy_and_auroc(tmp_path: Path) -> None:
    root = write_adult(tmp_path / "adult", train=[r for _ in range(8) for r in TRAIN_ROWS])
    recipe = {"name": "adult_tiny", "data": {"name": "adult", "root": str(root), "val_fraction": 0.25}, "model": {"name": "tabular_mlp"}}
    results, split = fit_baselines(recipe, models=["logistic_regression", "gradient_boosting"])
    assert split["test_size"] == 3 and [r.model for r in results] == ["logistic_regression", "gradient_boosting"]
    for r in results:
        assert r.metric == "accuracy" and 0 <= r.value <= 1 and r.auroc is not None and 0 <= r.auroc <= 1


def test_auroc_is_sklearns_on_the_positive_score() -> None:
    from deepstrata.baselines.classical import binary_auroc

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    model = _models(True, 200, 0)["logistic_regression"].fit(x, y)
    assert binary_auroc(model, x, y) == roc_auc_score(y, model.predict_proba(x)[:, 1])
    svm = _models(True, 200, 0)["svm_rbf"].fit(x, y)  # no predict_proba: the decision function ranks
    assert binary_auroc(svm, x, y) == roc_auc_score(y, svm.decision_function(x))
    assert binary_auroc(model, x, np.zeros(200, int)) is None
