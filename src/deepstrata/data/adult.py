"""UCI Adult (census income, 1994): does a person earn more than $50K a year?

Problem: Adult is the standard table for tabular learning and for fairness audits (it holds
`sex` and `race`), but its two files differ in small ways that break naive readers: the test
file's first line is a comment ("|1x3 Cross validator"), its labels end with a dot (">50K."),
values follow ", " separators, and missing values are written "?".
Idea: read `adult.data[.gz]` (32,561 rows, the training part) and `adult.test[.gz]` (16,281
rows, the official test part) from `data.root`, or from `$DEEPSTRATA_DATA/adult/`, and encode
them the one documented way of data/categorical_table.py: the six numeric columns first (age,
fnlwgt, education-num, capital-gain, capital-loss, hours-per-week), standardised on the
training rows only by `build_data`, then the eight categorical columns as integer codes
(levels from the training file only; a missing value "?" is its own level, since whether a
value is missing is informative in Adult: 7.4% of training rows miss one; a test level never
seen in training maps to "<unseen>"). `sex` and `race` are also kept per row as
`attributes` for fairness audits, so `data.drop: [sex, race]` removes them from the features
without losing the groups. Class 1 is ">50K" (7,841 of the 32,561 training rows, 24.1%).
(Kohavi 1996; Dua & Graff, UCI Machine Learning Repository.)

A plain `mlp` runs on this data too (it reads the codes as numbers); the tabular models
(`tabular_mlp`, `ft_transformer`) embed each categorical column instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepstrata.data.base import TensorData
from deepstrata.data.categorical_table import labels, mixed_table
from deepstrata.data.source import resolve_source
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
]  # fmt: skip
NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
CLASSES = ["<=50K", ">50K"]
ATTRIBUTES = ["sex", "race"]


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: missing {stem}.gz (or {stem}); the Adult folder holds adult.data.gz and adult.test.gz from the UCI repository; set data.root to it")


def read_adult_file(file: Path) -> tuple[pd.DataFrame, pd.Series]:
    """(features as columns of COLUMNS, label strings without the test file's trailing dot)."""
    try:
        frame = pd.read_csv(
            file,
            header=None,
            names=[*COLUMNS, "income"],
            sep=",",
            skipinitialspace=True,
            comment="|",  # the test file's first line
            dtype={c: str for c in CATEGORICAL} | {"income": str},
            na_filter=False,  # "?" stays a string: it is a level of its own
            skip_blank_lines=True,
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{file}: not a UCI Adult file ({err}); each line holds 14 comma-separated attributes and the label".replace("\n", " ")) from None
    bad = [c for c in NUMERIC if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad or frame["income"].eq("").any():
        raise DataError(f"{file}: not a UCI Adult file (column '{bad[0] if bad else 'income'}' is not as expected); each line holds 14 comma-separated attributes and the label")
    return frame[COLUMNS], frame["income"].str.rstrip(".")


@register_dataset("adult")
def adult(*, root: str | None = None, drop: list[str] = [], limit: int | None = None) -> TensorData:  # noqa: B006 - read, never mutated
    """UCI Adult census income: 32,561 train + official 16,281 test rows, 6 numeric + 8 categorical columns, >50K?

    root: the folder holding adult.data[.gz] and adult.test[.gz] (default `$DEEPSTRATA_DATA/adult`).
    drop: feature columns to leave out (e.g. [sex, race]); `sex` and `race` stay attributes.
    limit: read only the first `limit` rows of each file (quick tests).
    """
    folder = resolve_source("adult", root=root, what="adult.data.gz and adult.test.gz")
    train_file, test_file = _find(folder, "adult.data"), _find(folder, "adult.test")
    train, train_labels = read_adult_file(train_file)
    test, test_labels = read_adult_file(test_file)
    if limit is not None:
        train, train_labels, test, test_labels = train[:limit], train_labels[:limit], test[:limit], test_labels[:limit]
    mapping = {name: i for i, name in enumerate(CLASSES)}
    return mixed_table(
        "adult",
        train=train,
        y=labels(train_file, train_labels.to_numpy(), mapping),
        test=test,
        test_y=labels(test_file, test_labels.to_numpy(), mapping),
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        class_names=CLASSES,
        attributes={a: (train[a].to_numpy(), test[a].to_numpy()) for a in ATTRIBUTES},
        drop=list(drop),
        raw="census attributes: numeric values, then categorical codes (input_spec.categories)",
        description=f"UCI Adult from {folder}",
    )
