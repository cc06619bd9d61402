"""sklearn's digits written as train.jsonl + test.jsonl, for tools that compare runs of several seeds.

With the registered `digits` dataset every seed draws its own test rows, so runs of different
seeds cannot be ensembled or compared row by row; an official test part fixes the test rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_digits_jsonl(folder: Path) -> Path:
    """300 test rows and the rest as training rows (a fixed permutation); returns `folder`."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("test", order[:300]), ("train", order[300:])):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for i in rows:
                fh.write(json.dumps({"pixels": (bunch.data[i] / 16.0).round(4).tolist(), "label": int(bunch.target[i])}) + "\n")
    return folder
