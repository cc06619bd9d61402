"""Tables users bring: CSV, Parquet and JSON Lines files with a named target column.

Problem: a table has a target column among feature columns, labels as strings or integers,
missing values and text where numbers belong; finding that out mid-training is too late.
Idea: read the whole file (pandas for CSV and Parquet, line by line for JSON Lines so errors
name the line), check that the target exists, that every feature is numeric and finite and
every label is a known class, then hand numeric features to `build_data`, which standardises
them on the training rows only. `path` is one file, split by the data fractions; `root` is a
folder holding `train.<ext>` and optionally `test.<ext>` as the official test part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.data.source import resolve_source
from deepstrata.errors import DataError, did_you_mean
from deepstrata.registry import register_dataset

Task = Literal["auto", "classification", "regression"]


def _files(name: str, ext: str, root: str | None, path: str | None) -> tuple[Path, Path | None]:
    """(training file, official test file or None)."""
    source = resolve_source(name, root=root, path=path, what=f"a .{ext} file")
    if source.is_file():
        return source, None
    train, test = source / f"train.{ext}", source / f"test.{ext}"
    if not train.is_file():
        raise DataError(f"{source}: no train.{ext}; give data.path=FILE.{ext}, or a data.root folder holding train.{ext} (and optionally test.{ext})")
    return train, test if test.is_file() else None


def _columns(file: Path, available: list[str], target: str, features: list[str] | None) -> list[str]:
    if target not in available:
        raise DataError(f"{file}: no target column '{target}'{did_you_mean(target, available)} (columns: {', '.join(available)}); set data.target")
    chosen = features if features is not None else [c for c in available if c != target]
    missing = [c for c in chosen if c not in available]
    if missing:
        raise DataError(f"{file}: no feature column '{missing[0]}'{did_you_mean(missing[0], available)} (columns: {', '.join(available)})")
    if not chosen:
        raise DataError(f"{file}: no feature columns besides the target '{target}'")
    if target in chosen:
        raise DataError(f"{file}: the target '{target}' is also listed as a feature")
    return chosen


def _numeric(file: Path, column: str, values: Any) -> np.ndarray:
    """One feature column as float32; a clear error for text, booleans aside, or missing values."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"{file}: feature column '{column}' is not numeric (e.g. {arr[0]!r}); encode it as numbers or leave it out with data.features=[...]")
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"{file}: feature column '{column}' has a missing or infinite value in data row {int(bad[0])}; fill or drop such rows")
    return arr


def _labels(file: Path, target: str, values: np.ndarray, *, task: Task, classes: list[str] | None) -> tuple[torch.Tensor, list[str] | None, str]:
    """Encode the target column: (y, class names or None, task)."""
    if task == "classification" and np.issubdtype(values.dtype, np.floating):
        # pandas reads an integer column with a gap as float: report the gap, keep whole numbers as indices.
        missing = np.flatnonzero(~np.isfinite(values))
        if len(missing):
            raise DataError(f"{file}: target column '{target}' has a missing label in data row {int(missing[0])}")
        if np.all(values == np.round(values)):
            values = values.astype(np.int64)
    integer = np.issubdtype(values.dtype, np.integer)
    if task == "auto":
        task = "regression" if np.issubdtype(values.dtype, np.floating) else "classification"
    if task == "regression":
        try:
            y = values.astype(np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{file}: target column '{target}' is not numeric, so it cannot be a regression target") from None
        if not np.isfinite(y).all():
            raise DataError(f"{file}: target column '{target}' has a missing value in data row {int(np.flatnonzero(~np.isfinite(y))[0])}")
        return torch.from_numpy(y).unsqueeze(1), None, task
    if integer:
        # Integer labels are class indices: 0..K-1, K from data.classes or from the largest label.
        k = len(classes) if classes is not None else int(values.max()) + 1
        bad = np.flatnonzero((values < 0) | (values >= k))
        if len(bad):
            raise DataError(f"{file}: label {int(values[bad[0]])} in data row {int(bad[0])} is outside the class range 0..{k - 1}")
        return torch.from_numpy(values.astype(np.int64)), classes or [str(i) for i in range(k)], task
    text = np.array([str(v) for v in values])
    if any(v in ("nan", "None", "") for v in text):
        raise DataError(f"{file}: target column '{target}' has a missing label in data row {[v in ('nan', 'None', '') for v in text].index(True)}")
    names = classes if classes is not None else sorted(set(text.tolist()))
    index = {n: i for i, n in enumerate(names)}
    for row, v in enumerate(text):
        if v not in index:
            raise DataError(f"{file}: label '{v}' in data row {row} is not one of the classes ({', '.join(names)})")
    return torch.tensor([index[v] for v in text], dtype=torch.int64), names, task


def _from_columns(file: Path, cols: dict[str, Any], target: str, features: list[str] | None, task: Task, classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str] | None, str, list[str]]:
    chosen = _columns(file, list(cols), target, features)
    if len(np.asarray(cols[target])) == 0:
        raise DataError(f"{file}: the table has no rows")
    parts = [_numeric(file, c, cols[c]).reshape(len(cols[c]), -1) for c in chosen]
    x = torch.from_numpy(np.concatenate(parts, axis=1))  # (N, F)
    y, names, kind = _labels(file, target, np.asarray(cols[target]), task=task, classes=classes)
    return x, y, names, kind, chosen


def _table(name: str, train: Path, test: Path | None, read: Any, *, target: str, features: list[str] | None, task: Task, classes: list[str] | None, standardize: bool) -> TensorData:
    x, y, names, kind, chosen = _from_columns(train, read(train), target, features, task, classes)
    test_x = test_y = None
    if test is not None:
        # The test file is encoded with the training file's classes and task.
        test_x, test_y, _, _, _ = _from_columns(test, read(test), target, chosen, kind, names)  # type: ignore[arg-type]
    return TensorData(
        x=x,
        y=y,
        test_x=test_x,
        test_y=test_y,
        task=kind,  # type: ignore[arg-type]
        class_names=names,
        input_spec={"scale": 1.0, "raw": f"the feature columns of {train.name}", "features": chosen},
        description=f"{name} table {train}",
        standardize=standardize,
    )


def _read_pandas(kind: str) -> Any:
    def read(file: Path) -> dict[str, Any]:
        import pandas as pd

        try:
            frame = pd.read_csv(file) if kind == "csv" else pd.read_parquet(file)
        except Exception as err:  # pandas/pyarrow raise many types for a bad file
            raise DataError(f"{file}: cannot read it as {kind.upper()} ({type(err).__name__}: {err})".replace("\n", " ")) from None
        return {str(c): frame[c].to_numpy() for c in frame.columns}

    return read


def _read_jsonl(file: Path) -> dict[str, Any]:
    """Columns from one JSON object per line; a value may be a number, a string label or a list of numbers."""
    rows: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{file}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{file}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
            if rows and row.keys() != rows[0].keys():
                raise DataError(f"{file}:{lineno}: keys {sorted(row)} differ from the first line's {sorted(rows[0])}")
            rows.append(row)
    if not rows:
        raise DataError(f"{file}: no JSON lines in the file")
    cols: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        try:
            cols[key] = np.array(values, dtype=np.float32) if any(isinstance(v, list) for v in values) else np.array(values)
        except (ValueError, TypeError):
            raise DataError(f"{file}: key '{key}' holds lists of different lengths or non-numbers; every line needs the same shape") from None
    return cols


@register_dataset("csv")
def csv(*, target: str, path: str | None = None, root: str | None = None, features: list[str] | None = None, task: Task = "auto", classes: list[str] | None = None, standardize: bool = True) -> TensorData:
    """A CSV table with a named target column (pandas); numeric features, standardised on the training rows."""
    train, test = _files("csv", "csv", root, path)
    return _table("csv", train, test, _read_pandas("csv"), target=target, features=features, task=task, classes=classes, standardize=standardize)


@register_dataset("parquet")
def parquet(*, target: str, path: str | None = None, root: str | None = None, features: list[str] | None = None, task: Task = "auto", classes: list[str] | None = None, standardize: bool = True) -> TensorData:
    """A Parquet table with a named target column (pyarrow); numeric features, standardised on the training rows."""
    train, test = _files("parquet", "parquet", root, path)
    return _table("parquet", train, test, _read_pandas("parquet"), target=target, features=features, task=task, classes=classes, standardize=standardize)


@register_dataset("jsonl")
def jsonl(*, target: str = "label", path: str | None = None, root: str | None = None, features: list[str] | None = None, task: Task = "auto", classes: list[str] | None = None, standardize: bool = True) -> TensorData:
    """JSON Lines, one example per line: numbers or lists of numbers as features, a target key."""
    train, test = _files("jsonl", "jsonl", root, path)
    return _table("jsonl", train, test, _read_jsonl, target=target, features=features, task=task, classes=classes, standardize=standardize)
