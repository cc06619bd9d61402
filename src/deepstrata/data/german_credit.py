"""UCI Statlog German Credit: is a loan applicant a good or a bad credit risk?

Problem: the 1,000 applicants of German Credit are a standard fairness table (sex and age),
but the file codes its 13 categorical attributes as opaque symbols (A11..A202) and mixes sex
with marital status in one attribute, so a reader has to decode it before anything can be
said about groups.
Idea: read `german.data[.gz]` (space-separated, 20 attributes and the label 1 good / 2 bad)
from `data.path`, `data.root`, or `$DEEPSTRATA_DATA/german_credit/`; map every A-code to the
meaning the UCI documentation (german.doc) gives it, and encode the table the one documented
way of data/categorical_table.py: the 7 numeric attributes first (standardised on the
training rows by `build_data`), then the 13 categorical ones as codes, whose levels are the
documented codes in german.doc's order (plus "<unseen>"), not whatever the rows hold. There is no official
test part, so `data.test_fraction` sets one aside. Per row, `attributes` keep `sex`
(attribute 9: A91/A93/A94 male, A92/A95 female) and `age_group` ("<=25" / ">25", from
attribute 13; age is the protected attribute of German Credit in Kamiran & Calders 2012), for
fairness audits.
(Hofmann 1994, UCI Machine Learning Repository.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.data.base import TensorData
from deepstrata.data.categorical_table import labels, mixed_table
from deepstrata.data.source import resolve_source
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

COLUMNS = [
    "checking_account", "duration_months", "credit_history", "purpose", "credit_amount", "savings",
    "employment_since", "installment_rate", "personal_status_sex", "other_debtors", "residence_since",
    "property", "age", "other_installment_plans", "housing", "existing_credits", "job",
    "people_liable", "telephone", "foreign_worker",
]  # fmt: skip
NUMERIC = ["duration_months", "credit_amount", "installment_rate", "residence_since", "age", "existing_credits", "people_liable"]
CATEGORICAL = [c for c in COLUMNS if c not in NUMERIC]
CLASSES = ["good", "bad"]

# The meaning of each code, from german.doc.
MEANINGS = {
    "A11": "< 0 DM", "A12": "0 <= ... < 200 DM", "A13": ">= 200 DM / salary assignment >= 1 year", "A14": "no checking account",
    "A30": "no credits taken / all paid back duly", "A31": "all credits at this bank paid back duly",
    "A32": "existing credits paid back duly till now", "A33": "delay in paying off in the past",
    "A34": "critical account / other credits existing",
    "A40": "car (new)", "A41": "car (used)", "A42": "furniture/equipment", "A43": "radio/television",
    "A44": "domestic appliances", "A45": "repairs", "A46": "education", "A47": "vacation", "A48": "retraining",
    "A49": "business", "A410": "others",
    "A61": "< 100 DM", "A62": "100 <= ... < 500 DM", "A63": "500 <= ... < 1000 DM", "A64": ">= 1000 DM",
    "A65": "unknown / no savings account",
    "A71": "unemployed", "A72": "< 1 year", "A73": "1 <= ... < 4 years", "A74": "4 <= ... < 7 years", "A75": ">= 7 years",
    "A91": "male: divorced/separated", "A92": "female: divorced/separated/married", "A93": "male: single",
    "A94": "male: married/widowed", "A95": "female: single",
    "A101": "none", "A102": "co-applicant", "A103": "guarantor",
    "A121": "real estate", "A122": "building society savings / life insurance", "A123": "car or other",
    "A124": "unknown / no property",
    "A141": "bank", "A142": "stores", "A143": "none",
    "A151": "rent", "A152": "own", "A153": "for free",
    "A171": "unemployed / unskilled, non-resident", "A172": "unskilled, resident",
    "A173": "skilled employee / official", "A174": "management / self-employed / highly qualified",
    "A191": "none", "A192": "yes, registered under the customer's name",
    "A201": "yes", "A202": "no",
}  # fmt: skip
# Each categorical attribute's documented codes, in german.doc's order (A47 "vacation" is
# documented but never occurs); these fix the levels, so no rows decide the vocabulary.
CODES = {
    "checking_account": ["A11", "A12", "A13", "A14"],
    "credit_history": ["A30", "A31", "A32", "A33", "A34"],
    "purpose": ["A40", "A41", "A42", "A43", "A44", "A45", "A46", "A47", "A48", "A49", "A410"],
    "savings": ["A61", "A62", "A63", "A64", "A65"],
    "employment_since": ["A71", "A72", "A73", "A74", "A75"],
    "personal_status_sex": ["A91", "A92", "A93", "A94", "A95"],
    "other_debtors": ["A101", "A102", "A103"],
    "property": ["A121", "A122", "A123", "A124"],
    "other_installment_plans": ["A141", "A142", "A143"],
    "housing": ["A151", "A152", "A153"],
    "job": ["A171", "A172", "A173", "A174"],
    "telephone": ["A191", "A192"],
    "foreign_worker": ["A201", "A202"],
}
SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}


def read_german_file(file: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(the 20 attributes with codes decoded, the label strings "1"/"2")."""
    try:
        frame = pd.read_csv(file, header=None, names=[*COLUMNS, "risk"], sep=r"\s+", dtype=str, na_filter=False)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{file}: not a German Credit file ({err}); each line holds 20 space-separated attributes and the label 1 or 2".replace("\n", " ")) from None
    if frame["risk"].eq("").any() or frame.isna().any().any():
        raise DataError(f"{file}: not a German Credit file: each line holds 20 space-separated attributes and the label 1 or 2")
    for column in NUMERIC:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{file}: attribute '{column}' in data row {row} is not a number ({frame[column].iloc[row]!r})")
        frame[column] = values.astype(np.float32)
    for column in CATEGORICAL:
        unknown = sorted(set(frame[column]) - set(CODES[column]))
        if unknown:
            raise DataError(f"{file}: attribute '{column}' holds the unknown code '{unknown[0]}'; its codes are {', '.join(CODES[column])} (german.doc)")
    return frame, frame["risk"].to_numpy()


@register_dataset("german_credit")
def german_credit(*, root: str | None = None, path: str | None = None, drop: list[str] = []) -> TensorData:  # noqa: B006 - read, never mutated
    """UCI Statlog German Credit: 1,000 applicants, 7 numeric + 13 categorical attributes, good/bad risk.

    root: the folder holding german.data[.gz] (default `$DEEPSTRATA_DATA/german_credit`); path: the file.
    drop: feature columns to leave out (e.g. [personal_status_sex, age]); `sex` and `age_group` stay attributes.
    """
    source = resolve_source("german_credit", root=root, path=path, what="german.data.gz")
    file = source if source.is_file() else next((f for f in (source / "german.data.gz", source / "german.data") if f.is_file()), None)
    if file is None:
        raise DataError(f"{source}: missing german.data.gz (or german.data), the UCI Statlog German Credit file; set data.root to its folder or data.path to the file")
    frame, risk = read_german_file(file)
    attributes = {
        "sex": (frame["personal_status_sex"].map(SEX).to_numpy(), None),
        "age_group": (np.where(frame["age"].to_numpy() <= 25, "<=25", ">25"), None),
    }
    decoded = frame.copy()
    for column in CATEGORICAL:
        decoded[column] = frame[column].map(MEANINGS)
    return mixed_table(
        "german_credit",
        train=decoded,
        y=labels(file, risk, {"1": 0, "2": 1}),
        test=None,
        test_y=None,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        class_names=CLASSES,
        attributes=attributes,
        drop=list(drop),
        levels={column: [MEANINGS[code] for code in codes] for column, codes in CODES.items()},
        raw="credit attributes: numeric values, then categorical codes (input_spec.categories)",
        description=f"UCI Statlog German Credit from {file}",
    )
