"""UCI Adult: the files read as documented, codes from the training file, standardisation on training rows.

Most checks run on a tiny folder in the real files' format (written here, so they always run);
the real counts are checked on ../shared/data/adult when it is present.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata.data.adult import CATEGORICAL, COLUMNS, NUMERIC, adult
from deepstrata.data.base import build_data
from deepstrata.data.categorical_table import UNSEEN
from deepstrata.errors import DataError
from tests.conftest import SHARED_DATA, requires_shared_data

TRAIN_ROWS = [
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K",
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K",
    "38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, Black, Female, 0, 0, 40, ?, <=50K",
    "53, ?, 234721, 11th, 7, Married-civ-spouse, ?, Husband, Black, Male, 0, 0, 40, United-States, <=50K",
    "28, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Black, Female, 0, 0, 40, Cuba, >50K",
    "37, Private, 284582, Masters, 14, Married-civ-spouse, Exec-managerial, Wife, White, Female, 0, 0, 40, United-States, <=50K",
    "49, Private, 160187, 9th, 5, Married-spouse-absent, Other-service, Not-in-family, Black, Female, 0, 0, 16, Jamaica, <=50K",
    "52, Self-emp-not-inc, 209642, HS-grad, 9, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 45, United-States, >50K",
]
TEST_ROWS = [
    "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.",
    "38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, ?, >50K.",
    "44, Never-worked, 160323, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 7688, 0, 40, Holand-Netherlands, >50K.",
]


def write_adult(folder: Path, train: list[str] = TRAIN_ROWS, test: list[str] = TEST_ROWS) -> Path:
    """A folder in the UCI files' format: gzip, ', ' separators, the test file's comment line and dotted labels."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "adult.data.gz", "wt") as f:
        f.write("\n".join(train) + "\n\n")
    with gzip.open(folder / "adult.test.gz", "wt") as f:
        f.write("|1x3 Cross validator\n" + "\n".join(test) + "\n")
    return folder


def raw_rows(file: Path) -> list[list[str]]:
    """The file's data rows parsed independently of the loader (csv module, comments and blanks dropped)."""
    with gzip.open(file, "rt") as f:
        return [[v.strip() for v in row] for row in csv.reader(f) if row and not row[0].startswith("|")]


def decode(x: torch.Tensor, spec: dict, column: str) -> list[str]:
    levels = spec["categories"][column]
    return [levels[int(c)] for c in x[:, spec["columns"].index(column)].tolist()]


def test_layout_codes_and_unseen_levels(tmp_path: Path) -> None:
    data = adult(root=str(write_adult(tmp_path / "adult")))
    assert data.x.dtype == torch.float32 and data.x.shape == (8, 14) and data.test_x.shape == (3, 14)
    assert data.input_spec["columns"] == NUMERIC + CATEGORICAL
    assert data.class_names == ["<=50K", ">50K"]
    assert data.y.tolist() == [0, 1, 0, 0, 1, 0, 0, 1] and data.test_y.tolist() == [0, 1, 1]  # the test file's dot stripped
    # Numeric columns hold the raw numbers (build_data standardises them); categoricals decode to the file's strings.
    assert data.x[:, 0].tolist() == [39, 50, 38, 53, 28, 37, 49, 52]
    assert decode(data.x, data.input_spec, "occupation")[3] == "?"  # a missing value is its own level
    assert "?" in data.input_spec["categories"]["workclass"] and "?" in data.input_spec["categories"]["native-country"]
    # Levels come from the training file only: the test's unseen levels decode to UNSEEN.
    assert "Never-worked" not in data.input_spec["categories"]["workclass"]
    assert decode(data.test_x, data.input_spec, "workclass") == ["Private", "Private", UNSEEN]
    assert decode(data.test_x, data.input_spec, "race") == ["Black", "White", UNSEEN]
    assert decode(data.test_x, data.input_spec, "native-country") == ["United-States", "?", UNSEEN]
    for column, levels in data.input_spec["categories"].items():
        assert levels[-1] == UNSEEN and levels[:-1] == sorted(levels[:-1])
    assert data.model_defaults == {"numeric_features": 6, "categorical_cardinalities": [len(data.input_spec["categories"][c]) for c in CATEGORICAL]}
    assert data.attributes["sex"].tolist() == ["Male", "Male", "Female", "Male", "Female", "Female", "Female", "Male"]
    assert data.test_attributes["race"].tolist() == ["Black", "White", "Asian-Pac-Islander"]  # raw strings, even unseen ones


def test_drop_removes_features_and_keeps_attributes(tmp_path: Path) -> None:
    data = adult(root=str(write_adult(tmp_path / "adult")), drop=["sex", "race", "fnlwgt"])
    assert data.input_spec["columns"] == [c for c in NUMERIC + CATEGORICAL if c not in ("sex", "race", "fnlwgt")]
    assert data.x.shape == (8, 11) and data.model_defaults["numeric_features"] == 5
    assert len(data.model_defaults["categorical_cardinalities"]) == 6
    assert data.attributes["sex"].tolist()[:3] == ["Male", "Male", "Female"] and set(data.test_attributes) == {"sex", "race"}
    with pytest.raises(DataError, match=r"not a column; did you mean sex\?"):
        adult(root=str(tmp_path / "adult"), drop=["sexx"])


def test_standardisation_uses_training_rows_only_and_prediction_map_inverts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [r for _ in range(6) for r in TRAIN_ROWS]  # 48 rows: enough for a stratified validation split
    rng = np.random.default_rng(0)
    rows = [", ".join([str(int(rng.integers(17, 90)))] + r.split(", ")[1:]) for r in rows]  # varied ages
    root = write_adult(tmp_path / "adult", train=rows)
    monkeypatch.setenv("DEEPSTRATA_DATA", str(tmp_path))  # the default root: $DEEPSTRATA_DATA/adult
    raw = adult()
    bundle = build_data("adult", seed=0, val_fraction=0.25, test_fraction=0.0)
    train_idx = np.array(bundle.train.indices)
    spec = bundle.input_spec
    ages = raw.x[:, 0].double().numpy()
    assert spec["mean"][0] == pytest.approx(ages[train_idx].mean())
    assert spec["mean"][0] != pytest.approx(ages.mean())  # the validation rows did not shape it
    assert spec["std"][0] == pytest.approx(ages[train_idx].std())
    assert spec["mean"][6:] == [0.0] * 8 and spec["std"][6:] == [1.0] * 8
    # raw -> ((raw * scale) - mean) / std gives exactly what the model sees, in every split.
    model_x = torch.stack([bundle.test[i][0] for i in range(len(bundle.test))])
    mapped = (raw.test_x.double() * spec["scale"] - torch.tensor(spec["mean"])) / torch.tensor(spec["std"])
    assert torch.allclose(model_x.double(), mapped, atol=1e-5)
    assert torch.equal(model_x[:, 6:], raw.test_x[:, 6:])  # codes pass unchanged
    train_x = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
    assert train_x[:, :6].double().mean(0).abs().max() < 1e-5
    # The attributes follow the split: each training row's sex is its decoded sex column.
    assert bundle.attributes["train"]["sex"].tolist() == decode(train_x, spec, "sex")
    assert bundle.attributes["test"]["sex"].tolist() == decode(model_x, spec, "sex")
    assert root.is_dir()


def test_clear_errors_for_wrong_paths_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found; set data.root"):
        adult(root=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing adult.data.gz"):
        adult(root=str(tmp_path / "empty"))
    bad = write_adult(tmp_path / "bad", train=["39, State-gov, many, Bachelors, 13, x, y, z, White, Male, 0, 0, 40, US, <=50K"])
    with pytest.raises(DataError, match="not a UCI Adult file"):
        adult(root=str(bad))
    wrong = write_adult(tmp_path / "wrong", train=[TRAIN_ROWS[0].replace("<=50K", "maybe")])
    with pytest.raises(DataError, match="label 'maybe' in data row 0"):
        adult(root=str(wrong))


@requires_shared_data("adult")
def test_the_real_files() -> None:
    root = SHARED_DATA / "adult"
    data = adult(root=str(root))
    assert (len(data.x), len(data.test_x)) == (32561, 16281)
    assert int(data.y.sum()) == 7841 and int(data.test_y.sum()) == 3846
    train_raw, test_raw = raw_rows(root / "adult.data.gz"), raw_rows(root / "adult.test.gz")
    assert len(train_raw) == 32561 and len(test_raw) == 16281
    # Every categorical code decodes to the file's own string, in train and in test (no test level is unseen).
    for column in CATEGORICAL:
        j = COLUMNS.index(column)
        assert decode(data.x, data.input_spec, column) == [r[j] for r in train_raw]
        assert decode(data.test_x, data.input_spec, column) == [r[j] for r in test_raw]
    for column in NUMERIC:
        j = COLUMNS.index(column)
        assert data.test_x[:, data.input_spec["columns"].index(column)].tolist() == [float(r[j]) for r in test_raw]
    missing = np.array([any(v == "?" for v in r[:14]) for r in train_raw])
    assert missing.sum() == 2399  # 7.4% of the training rows miss at least one value
    coded = np.zeros(len(data.x), bool)
    for column in CATEGORICAL:
        if "?" in data.input_spec["categories"][column]:
            coded |= data.x[:, data.input_spec["columns"].index(column)].numpy() == data.input_spec["categories"][column].index("?")
    assert np.array_equal(coded, missing)
    assert data.attributes["sex"].tolist() == [r[COLUMNS.index("sex")] for r in train_raw]
    assert data.test_attributes["race"].tolist() == [r[COLUMNS.index("race")] for r in test_raw]


def synthetic_rows(n: int, seed: int = 0, *, test: bool = False) -> list[str]:
    """n rows in Adult's format whose label follows education-num, age and sex (plus noise): a table with signal."""
    rng = np.random.default_rng(seed)
    work, edu = ["Private", "State-gov", "Self-emp-inc", "?"], ["HS-grad", "Bachelors", "Masters", "11th"]
    rows = []
    for _ in range(n):
        age, e = int(rng.integers(17, 80)), int(rng.integers(0, 4))
        sex = str(rng.choice(["Male", "Female"]))
        score = (e in (1, 2)) + (age > 35) + 0.5 * (sex == "Male") + rng.normal(0, 0.5)
        label = ">50K" if score > 1.6 else "<=50K"
        rows.append(
            f"{age}, {work[int(rng.integers(0, 4))]}, {int(rng.integers(20000, 400000))}, {edu[e]}, {[9, 13, 14, 7][e]}, "
            f"Never-married, Sales, Not-in-family, {rng.choice(['White', 'Black'])}, {sex}, 0, 0, {int(rng.integers(20, 60))}, "
            f"United-States, {label}{'.' if test else ''}"
        )
    return rows
