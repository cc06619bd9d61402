"""German Credit: codes decoded to their documented meanings, sex and age groups per row, a clear error for a bad path."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from deepstrata.data.base import build_data
from deepstrata.data.categorical_table import UNSEEN
from deepstrata.data.german_credit import CATEGORICAL, CODES, COLUMNS, MEANINGS, NUMERIC, german_credit
from deepstrata.errors import DataError
from tests.conftest import SHARED_DATA, requires_shared_data

ROWS = [
    "A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1",
    "A12 48 A32 A43 5951 A61 A73 2 A92 A101 2 A121 22 A143 A152 1 A173 1 A191 A201 2",
    "A14 12 A34 A46 2096 A61 A74 2 A95 A101 3 A121 25 A143 A152 1 A172 2 A191 A201 1",
    "A11 42 A32 A42 7882 A61 A74 2 A94 A103 4 A122 45 A143 A153 1 A173 2 A191 A201 1",
]


def write_german(path: Path, rows: list[str] = ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(rows) + "\n")
    return path


def test_codes_decode_and_attributes(tmp_path: Path) -> None:
    data = german_credit(path=str(write_german(tmp_path / "g" / "german.data.gz")))
    assert data.input_spec["columns"] == NUMERIC + CATEGORICAL and data.x.shape == (4, 20)
    assert data.class_names == ["good", "bad"] and data.y.tolist() == [0, 1, 0, 0]
    assert data.test_x is None  # no official test part: data.test_fraction sets one aside
    spec = data.input_spec
    for column in CATEGORICAL:
        # The levels are german.doc's, in its order, whatever the rows hold.
        assert spec["categories"][column] == [MEANINGS[c] for c in CODES[column]] + [UNSEEN]
        j, col = COLUMNS.index(column), spec["columns"].index(column)
        decoded = [spec["categories"][column][int(v)] for v in data.x[:, col]]
        assert decoded == [MEANINGS[r.split()[j]] for r in ROWS]
    assert data.x[:, spec["columns"].index("age")].tolist() == [67, 22, 25, 45]
    assert data.attributes["sex"].tolist() == ["male", "female", "female", "male"]  # A93, A92, A95, A94
    assert data.attributes["age_group"].tolist() == [">25", "<=25", "<=25", ">25"]
    assert data.model_defaults == {"numeric_features": 7, "categorical_cardinalities": [len(CODES[c]) + 1 for c in CATEGORICAL]}
    dropped = german_credit(path=str(tmp_path / "g" / "german.data.gz"), drop=["personal_status_sex", "age"])
    assert "age" not in dropped.input_spec["columns"] and dropped.model_defaults["numeric_features"] == 6
    assert dropped.attributes["sex"].tolist() == data.attributes["sex"].tolist()


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found"):
        german_credit(root=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing german.data.gz"):
        german_credit(root=str(tmp_path / "empty"))
    bad = write_german(tmp_path / "bad.gz", [ROWS[0].replace("A43", "A99")])
    with pytest.raises(DataError, match="'purpose' holds the unknown code 'A99'"):
        german_credit(path=str(bad))
    label = write_german(tmp_path / "label.gz", [ROWS[0][:-1] + "3"])
    with pytest.raises(DataError, match="label '3' in data row 0"):
        german_credit(path=str(label))


@requires_shared_data("german_credit")
def test_the_real_file() -> None:
    data = german_credit(root=str(SHARED_DATA / "german_credit"))
    assert len(data.x) == 1000 and int(data.y.sum()) == 300  # 700 good, 300 bad
    with gzip.open(SHARED_DATA / "german_credit" / "german.data.gz", "rt") as f:
        rows = [line.split() for line in f if line.strip()]
    sex = ["female" if r[8] in ("A92", "A95") else "male" for r in rows]
    assert data.attributes["sex"].tolist() == sex and sex.count("female") == 310
    assert data.attributes["age_group"].tolist() == ["<=25" if int(r[12]) <= 25 else ">25" for r in rows]
    bundle = build_data("german_credit", seed=0, val_fraction=0.1, test_fraction=0.2, dataset_kwargs={"root": str(SHARED_DATA / "german_credit")})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (700, 100, 200)
    test_idx = np.array(bundle.test.indices)
    assert bundle.attributes["test"]["sex"].tolist() == np.array(sex)[test_idx].tolist()
    ages = data.x[:, 4].double().numpy()
    assert bundle.input_spec["mean"][4] == pytest.approx(ages[np.array(bundle.train.indices)].mean())
