"""scikit-learn's small tables: iris, wine, breast cancer (classification) and diabetes (regression).

Problem: tabular methods need real, well-known tables that load offline in milliseconds, and
their features sit on very different scales (proline in mg/L next to hue near 1).
Idea: read the copies that ship inside scikit-learn (Fisher 1936; Aeberhard et al. 1992;
Street, Wolberg & Mangasarian 1993; Efron et al. 2004), keep the raw measurements, and let
`build_data` standardise each feature with statistics of the training rows only, recorded in
the run so prediction takes raw measurements.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.data.base import TensorData
from deepstrata.registry import register_dataset


def _table(bunch: Any, *, task: str, raw: str, description: str) -> TensorData:
    x = torch.tensor(bunch.data, dtype=torch.float32)  # (N, F) raw measurements
    if task == "classification":
        y = torch.tensor(bunch.target, dtype=torch.int64)
        class_names = [str(c) for c in bunch.target_names]
    else:
        y = torch.tensor(bunch.target, dtype=torch.float32).unsqueeze(1)  # (N, 1)
        class_names = None
    return TensorData(
        x=x,
        y=y,
        task=task,  # type: ignore[arg-type]
        class_names=class_names,
        input_spec={"scale": 1.0, "raw": raw, "features": [str(f) for f in bunch.feature_names]},
        description=description,
        standardize=True,
    )


@register_dataset("iris")
def iris() -> TensorData:
    """Fisher's iris: 150 flowers, 4 measurements in cm, 3 species (offline, scikit-learn)."""
    from sklearn.datasets import load_iris

    return _table(load_iris(), task="classification", raw="sepal/petal length and width in cm", description="Fisher's iris via sklearn.datasets.load_iris")


@register_dataset("wine")
def wine() -> TensorData:
    """UCI wine: 178 wines, 13 chemical measurements, 3 cultivars (offline, scikit-learn)."""
    from sklearn.datasets import load_wine

    return _table(load_wine(), task="classification", raw="13 chemical measurements, original units", description="UCI wine recognition via sklearn.datasets.load_wine")


@register_dataset("breast_cancer")
def breast_cancer() -> TensorData:
    """Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant/benign (offline)."""
    from sklearn.datasets import load_breast_cancer

    return _table(
        load_breast_cancer(),
        task="classification",
        raw="30 cell-nucleus features, original units",
        description="Wisconsin diagnostic breast cancer via sklearn.datasets.load_breast_cancer",
    )


@register_dataset("diabetes")
def diabetes() -> TensorData:
    """Diabetes progression: 442 patients, 10 raw baseline variables, a one-year disease score (regression)."""
    from sklearn.datasets import load_diabetes

    return _table(
        load_diabetes(scaled=False),
        task="regression",
        raw="age, sex, bmi, bp, s1..s6 in original units",
        description="Efron et al. diabetes via sklearn.datasets.load_diabetes(scaled=False); target: disease progression after one year",
    )
