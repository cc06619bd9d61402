"""CSV, Parquet and JSON Lines tables: generated files, label encodings, and every bad-table error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import deepstrata.api as api
from deepstrata.data.base import build_data
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS


def frame(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n).round(1),
            "weight": rng.normal(70, 8, n).round(1),
            "smoker": rng.integers(0, 2, n).astype(bool),
            "species": np.array(["ant", "bee", "cat"])[np.arange(n) % 3],
            "score": rng.normal(0, 1, n),
            "grade": np.arange(n) % 4,
        }
    )


def test_csv_string_labels_become_sorted_classes(tmp_path: Path) -> None:
    df = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    data = DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="species", features=["height", "weight", "smoker"])
    assert data.task == "classification" and data.class_names == ["ant", "bee", "cat"]
    assert data.x.shape == (30, 3) and data.x.dtype == torch.float32 and data.standardize
    assert data.y.tolist() == (np.arange(30) % 3).tolist()
    torch.testing.assert_close(data.x[:, 0], torch.tensor(df["height"].to_numpy(), dtype=torch.float32))


def test_csv_float_target_is_regression_and_int_target_is_class_indices(tmp_path: Path) -> None:
    frame().drop(columns=["species"]).to_csv(tmp_path / "t.csv", index=False)
    reg = DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="score")
    assert reg.task == "regression" and reg.y.shape == (30, 1) and reg.x.shape == (30, 4)
    cls = DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="grade", classes=["d", "c", "b", "a"])
    assert cls.task == "classification" and cls.class_names == ["d", "c", "b", "a"] and int(cls.y.max()) == 3


def test_parquet_round_trip_and_official_test_file(tmp_path: Path) -> None:
    frame(40).to_parquet(tmp_path / "train.parquet")
    frame(12, seed=1).to_parquet(tmp_path / "test.parquet")
    bundle = build_data("parquet", seed=0, val_fraction=0.25, test_fraction=0.2, dataset_kwargs={"root": str(tmp_path), "target": "species", "features": ["height", "weight"]})
    assert bundle.split["test"] == "official" and len(bundle.test) == 12 and bundle.class_names == ["ant", "bee", "cat"]
    assert bundle.input_spec["features"] == ["height", "weight"] and len(bundle.input_spec["mean"]) == 2


def test_jsonl_numbers_lists_and_string_labels(tmp_path: Path) -> None:
    lines = [{"pixels": [i, i + 1, i + 2], "age": 20 + i, "label": "yes" if i % 2 else "no"} for i in range(10)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    data = DATASETS.get("jsonl")(path=str(tmp_path / "d.jsonl"))
    assert data.x.shape == (10, 4) and data.class_names == ["no", "yes"]
    assert data.x[3].tolist() == [3.0, 4.0, 5.0, 23.0] and data.y[3] == 1


def test_missing_target_column_names_the_file_and_the_closest_column(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: no target column 'specie'; did you mean species\?"):
        DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="specie")


def test_text_feature_column_is_refused(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: feature column 'species' is not numeric"):
        DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="grade")


def test_missing_feature_value_names_the_row(tmp_path: Path) -> None:
    df = frame()
    df.loc[7, "weight"] = np.nan
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"feature column 'weight' has a missing or infinite value in data row 7"):
        DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="species", features=["height", "weight"])


def test_labels_outside_the_class_range(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: label 3 in data row 3 is outside the class range 0\.\.2"):
        DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="grade", features=["height"], classes=["a", "b", "c"])
    with pytest.raises(DataError, match=r"label 'cat' in data row 2 is not one of the classes \(ant, bee\)"):
        DATASETS.get("csv")(path=str(tmp_path / "t.csv"), target="species", features=["height"], classes=["ant", "bee"])


def test_bad_jsonl_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1, "label": 0}\n{"a": 2, "label": 1\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        DATASETS.get("jsonl")(path=str(path))
    path.write_text('{"a": 1, "label": 0}\n{"b": 2, "label": 1}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: keys \['b', 'label'\] differ"):
        DATASETS.get("jsonl")(path=str(path))
    path.write_text("")
    with pytest.raises(DataError, match=r"d\.jsonl: no JSON lines"):
        DATASETS.get("jsonl")(path=str(path))


def test_unreadable_parquet_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"x\.parquet: cannot read it as PARQUET"):
        DATASETS.get("parquet")(path=str(tmp_path / "x.parquet"), target="y")
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        DATASETS.get("csv")(path=str(tmp_path / "nope.csv"), target="y")
    with pytest.raises(DataError, match="no train.csv"):
        DATASETS.get("csv")(root=str(tmp_path), target="y")


def test_csv_without_target_stops_train_before_any_run_directory(tmp_path: Path, tiny_recipe: dict) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    tiny_recipe["data"] = {"name": "csv", "path": str(tmp_path / "t.csv"), "target": "label"}
    tiny_recipe["model"] = {"name": "mlp"}
    with pytest.raises(DataError, match=r"t\.csv: no target column 'label'"):
        api.train(tiny_recipe)
    runs = Path(tiny_recipe["output_dir"])
    assert not runs.exists() or not any(runs.rglob("*"))
