"""Mixed tables (numeric and categorical columns) as one float matrix a network can read.

Problem: census and credit tables mix numbers (age, amount) with categories (occupation,
purpose); categories have no order, some values are missing ("?" in UCI Adult), and the test
file may hold a level that the training file never showed. Encoding them ad hoc per loader
lets codes drift between train and test, or lets the test file define the vocabulary.
Idea: one encoding for every such table. The columns are laid out numeric first, then
categorical; each categorical column's levels are the sorted distinct strings of the
TRAINING rows (a missing value is simply the level "?", kept as its own category, because
whether a value is missing is itself informative), plus a final level "<unseen>" that any
other string (a level met only in the test rows) maps to. Codes are stored as floats in x;
`build_data` standardises only the leading numeric columns, on the training rows
(`TensorData.numeric_features`). `input_spec` records the column order and every column's
levels, so code i of column c means `input_spec["categories"][c][i]`; `model_defaults`
give the tabular models their `numeric_features` and `categorical_cardinalities`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from deepstrata.data.base import TensorData
from deepstrata.errors import DataError, did_you_mean

MISSING = "?"
UNSEEN = "<unseen>"


def fit_levels(values: np.ndarray) -> list[str]:
    """The vocabulary of one categorical column: its sorted training levels, then UNSEEN."""
    levels = sorted({str(v) for v in values})
    return [*levels, UNSEEN]


def encode(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """(N,) strings -> (N,) float32 codes; a string outside `levels` gets the UNSEEN code."""
    index = {level: i for i, level in enumerate(levels)}
    unseen = index[UNSEEN]
    return np.array([index.get(str(v), unseen) for v in values], dtype=np.float32)


def check_drop(name: str, drop: list[str], columns: list[str]) -> None:
    """Every name in `drop` must be a feature column of the table."""
    for column in drop:
        if column not in columns:
            raise DataError(f"dataset '{name}': data.drop names '{column}', which is not a column{did_you_mean(column, columns)} (columns: {', '.join(columns)})")


def mixed_table(
    name: str,
    *,
    train: pd.DataFrame,
    y: np.ndarray,
    test: pd.DataFrame | None,
    test_y: np.ndarray | None,
    numeric: list[str],
    categorical: list[str],
    class_names: list[str],
    attributes: dict[str, tuple[np.ndarray, np.ndarray | None]],
    drop: list[str],
    raw: str,
    levels: dict[str, list[str]] | None = None,
    description: str,
) -> TensorData:
    """A TensorData of `numeric` then `categorical` columns (those in `drop` left out).

    attributes: name -> (training values, test values or None), (N,) strings each.
    levels: a documented vocabulary per categorical column (UNSEEN is appended); the columns
        it leaves out take theirs from the training rows (`fit_levels`).
    """
    check_drop(name, drop, numeric + categorical)
    numeric = [c for c in numeric if c not in drop]
    categorical = [c for c in categorical if c not in drop]
    given = levels or {}
    levels = {c: [*given[c], UNSEEN] if c in given else fit_levels(train[c].to_numpy()) for c in categorical}

    def matrix(frame: pd.DataFrame) -> torch.Tensor:
        parts = [frame[c].to_numpy(dtype=np.float32) for c in numeric]
        parts += [encode(frame[c].to_numpy(), levels[c]) for c in categorical]
        return torch.from_numpy(np.stack(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32))

    if not numeric and not categorical:
        raise DataError(f"dataset '{name}': data.drop removes every feature column; keep at least one")
    spec: dict[str, Any] = {
        "scale": 1.0,
        "raw": raw,
        "columns": numeric + categorical,
        "features": numeric + categorical,
        "numeric": numeric,
        "categories": levels,
    }
    return TensorData(
        x=matrix(train),
        y=torch.from_numpy(np.asarray(y, dtype=np.int64)),
        test_x=matrix(test) if test is not None else None,
        test_y=torch.from_numpy(np.asarray(test_y, dtype=np.int64)) if test_y is not None else None,
        task="classification",
        class_names=class_names,
        input_spec=spec,
        description=description,
        standardize=True,
        numeric_features=len(numeric),
        model_defaults={"numeric_features": len(numeric), "categorical_cardinalities": [len(levels[c]) for c in categorical]},
        attributes={k: np.asarray(v[0], dtype=str) for k, v in attributes.items()},
        test_attributes={k: np.asarray(v[1], dtype=str) for k, v in attributes.items() if v[1] is not None},
    )


def labels(file: Any, values: np.ndarray, mapping: dict[str, int]) -> np.ndarray:
    """String labels -> class indices, with the first unknown label named."""
    out = np.empty(len(values), dtype=np.int64)
    for row, v in enumerate(values):
        key = str(v).strip()
        if key not in mapping:
            raise DataError(f"{file}: label '{key}' in data row {row} is not one of {', '.join(mapping)}")
        out[row] = mapping[key]
    return out
