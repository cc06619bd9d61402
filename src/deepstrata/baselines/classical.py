"""Classical baselines: is deep learning the right tool for this data set?

Problem: a deep model's accuracy means little alone; on small tabular data a logistic regression
or a gradient-boosted forest often matches or beats it in a fraction of the time (Grinsztajn,
Oyallon & Varoquaux 2022, "Why do tree-based models still outperform deep learning on tabular
data?"). Idea: fit standard scikit-learn models (linear/logistic regression, random forest,
gradient boosting, SVM, k-NN) with their default settings on exactly the recipe's training rows,
score them on exactly its test rows, and report score and fit time beside the deep model's.
A table with categorical columns (`input_spec["categories"]`, data/categorical_table.py) is
given to each model the way it reads categories: one-hot columns for the linear model, the
SVM and k-NN, native categorical splits for gradient boosting (`categorical_features`); the
random forest splits the codes as numbers. Binary classification also reports the AUROC.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

BASELINES_FILE = "baselines.json"


@dataclass
class BaselineResult:
    """One classical model's test score and fit time."""

    model: str
    metric: str  # "accuracy" (classification) or "rmse" (regression)
    value: float
    fit_time_s: float
    r2: float | None = None
    auroc: float | None = None  # binary classification: area under the ROC curve of the positive class's score


def split_tensors(dataset: Any) -> tuple[Any, Any]:
    """A torch Dataset of (x, y) pairs -> its (N, ...) inputs and (N, ...) targets as tensors, in row order."""
    import torch
    from torch.utils.data import Subset, TensorDataset

    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        return tuple(t[dataset.indices] for t in dataset.dataset.tensors[:2])
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0], dataset.tensors[1]
    pairs = [dataset[i] for i in range(len(dataset))]
    return torch.stack([p[0] for p in pairs]), torch.stack([torch.as_tensor(p[1]) for p in pairs])


def _arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """A torch Dataset of (x, y) pairs -> (N, features) float array and (N,) targets."""
    x, y = split_tensors(dataset)
    return x.reshape(len(x), -1).double().numpy(), y.numpy()


def categorical_columns(input_spec: Mapping[str, Any]) -> list[int]:
    """Indices of the categorical columns of a mixed table's x (none for other data)."""
    columns = list(input_spec.get("columns") or [])
    return [columns.index(c) for c in (input_spec.get("categories") or {}) if c in columns]


def _models(classification: bool, n_train: int, seed: int, *, n_features: int = 0, categorical: Sequence[int] = ()) -> dict[str, Any]:
    from sklearn import compose, ensemble, linear_model, neighbors, pipeline, preprocessing, svm

    categorical = list(categorical)
    numeric = [i for i in range(n_features) if i not in categorical]

    def scaled(model: Any) -> Any:  # linear models, SVMs and k-NN need standardised features (and one-hot categories)
        if not categorical:
            return pipeline.make_pipeline(preprocessing.StandardScaler(), model)
        columns = compose.ColumnTransformer(
            [("numeric", preprocessing.StandardScaler(), numeric), ("categorical", preprocessing.OneHotEncoder(handle_unknown="ignore"), categorical)]
        )
        return pipeline.make_pipeline(columns, model)

    k = min(5, max(1, n_train - 1))
    native = categorical or None  # HistGradientBoosting splits categories natively
    if classification:
        return {
            "logistic_regression": scaled(linear_model.LogisticRegression(max_iter=2000)),
            "random_forest": ensemble.RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
            "gradient_boosting": ensemble.HistGradientBoostingClassifier(random_state=seed, categorical_features=native),
            "svm_rbf": scaled(svm.SVC()),
            "knn": scaled(neighbors.KNeighborsClassifier(n_neighbors=k)),
        }
    return {
        "linear_regression": scaled(linear_model.LinearRegression()),
        "random_forest": ensemble.RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1),
        "gradient_boosting": ensemble.HistGradientBoostingRegressor(random_state=seed, categorical_features=native),
        "svr_rbf": scaled(svm.SVR()),
        "knn": scaled(neighbors.KNeighborsRegressor(n_neighbors=k)),
    }


def binary_auroc(model: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    """AUROC of a fitted binary classifier's score for class 1 (None for more classes or a single class in y)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) != 2 or set(np.unique(y)) - {0, 1}:
        return None
    score = model.predict_proba(x)[:, 1] if hasattr(model, "predict_proba") else model.decision_function(x)
    return float(roc_auc_score(y, score))


def fit_baselines(
    recipe: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    run: Any = None,
    models: Sequence[str] | None = None,
    n_threads: int = 1,
) -> tuple[list[BaselineResult], dict[str, Any]]:
    """Fit the classical baselines on a recipe's (or a finished run's) train split; score them on its test split.

    With `run` (a `deepstrata.Run`), the split is the run's own, rebuilt and checked against the
    hashes in its run.json. With a recipe, it is built by `deepstrata.experiment.build_recipe_data`,
    the function `build_experiment` splits with, so it is the one `strata train` uses for the same recipe and seed (the model is not built: baselines do not
    need it). Models are fitted with one BLAS/OpenMP thread (`n_threads`) so fit times are
    comparable. Returns (results, split description).
    """
    from threadpoolctl import threadpool_limits

    from deepstrata.errors import UserError, did_you_mean
    from deepstrata.tasks.base import task_class
    from deepstrata.tasks.classification import ClassificationTask
    from deepstrata.tasks.regression import RegressionTask

    if run is not None:
        rec, data = run.recipe, run.experiment().data
    else:
        rec, data = _recipe_data(recipe, overrides)
    kind = task_class(data.task)
    if not issubclass(kind, (ClassificationTask, RegressionTask)):
        raise UserError(f"strata baseline: recipe '{rec.name}' is a {data.task} task; classical baselines cover classification and regression")
    classification = issubclass(kind, ClassificationTask)
    x_tr, y_tr = _arrays(data.train)
    x_te, y_te = _arrays(data.test)
    if not classification and y_tr.ndim == 2 and y_tr.shape[1] == 1:  # (N, 1) targets -> (N,)
        y_tr, y_te = y_tr[:, 0], y_te[:, 0]
    available = _models(classification, len(x_tr), rec.seed, n_features=x_tr.shape[1], categorical=categorical_columns(data.input_spec))
    chosen = list(models) if models else list(available)
    for name in chosen:
        if name not in available:
            raise UserError(f"unknown {data.task} baseline '{name}'{did_you_mean(name, list(available))} (choices: {', '.join(available)})")
    results = []
    for name in chosen:
        model = available[name]
        with threadpool_limits(limits=n_threads):
            start = time.perf_counter()
            model.fit(x_tr, y_tr)
            fit_time = time.perf_counter() - start
        pred = model.predict(x_te)
        if classification:
            results.append(BaselineResult(name, "accuracy", float((pred == y_te).mean()), fit_time, auroc=binary_auroc(model, x_te, y_te)))
        else:
            rmse = float(np.sqrt(np.mean((pred - y_te) ** 2)))
            r2 = float(1 - np.sum((pred - y_te) ** 2) / np.sum((y_te - y_te.mean()) ** 2))
            results.append(BaselineResult(name, "rmse", rmse, fit_time, r2=r2))
    split = {"recipe": rec.name, "dataset": rec.data.name, "task": data.task, **data.split}
    return results, split


def _recipe_data(recipe: str | Path | Mapping[str, Any] | None, overrides: Sequence[str]) -> tuple[Any, Any]:
    """(recipe, data bundle) exactly as `build_experiment` splits it, without building the model."""
    from deepstrata.config import load_recipe
    from deepstrata.errors import UserError
    from deepstrata.experiment import build_recipe_data, seed_everything

    if recipe is None:
        raise UserError("strata baseline needs a recipe file or a finished run (--run RUN_DIR)")
    rec = load_recipe(recipe, overrides)
    seed_everything(rec.seed)
    return rec, build_recipe_data(rec)


def write_baselines(path: Path, results: list[BaselineResult], split: dict[str, Any]) -> Path:
    """Save results as JSON (`<run_dir>/baselines.json` is what the report's section reads)."""
    from deepstrata.run.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps({"split": split, "results": [asdict(r) for r in results]}, indent=1))


def read_baselines(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
