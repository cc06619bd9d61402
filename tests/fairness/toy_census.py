"""A tiny census-like table for the fairness tests: two numeric columns, then sex and race as integer codes.

The label depends on sex directly (as Adult's does through its proxies), so an ordinary model
selects one group far more often: there is a gap for the mitigations to close. It is shaped
like data/adult.py's output (input_spec columns and categories, per-row attributes), and is
registered as a dataset for the duration of a test module by `registered`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from deepstrata.data.base import TensorData

NAME = "_fair_toy"
SEX = ["Female", "Male"]
RACE = ["Black", "Other", "White"]


def toy_census(*, rows: int = 1600, drop: list[str] = [], seed: int = 0) -> TensorData:  # noqa: B006 - read only
    rng = np.random.default_rng(seed)
    sex = rng.choice(2, size=rows, p=[0.35, 0.65])
    race = rng.choice(3, size=rows, p=[0.15, 0.1, 0.75])
    x0, x1 = rng.normal(size=rows), rng.normal(size=rows)
    logit = 1.5 * x0 + 0.5 * x1 + 2.0 * sex - 1.6 + 0.3 * (race == 2)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    columns = {"x0": x0, "x1": x1, "sex": sex, "race": race}
    keep = [c for c in columns if c not in drop]
    x = np.stack([columns[c] for c in keep], axis=1).astype(np.float32)
    categories = {c: levels for c, levels in (("sex", SEX), ("race", RACE)) if c in keep}
    return TensorData(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        task="classification",
        class_names=["no", "yes"],
        input_spec={"columns": keep, "categories": categories},
        attributes={"sex": np.array(SEX)[sex], "race": np.array(RACE)[race]},
    )


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """`_fair_toy` in the dataset registry while the block runs."""
    from deepstrata.registry import DATASETS

    with __import__("pytest").MonkeyPatch.context() as patch:
        patch.setitem(DATASETS._items, NAME, toy_census)
        yield


def recipe(out: Any, **changes: Any) -> dict[str, Any]:
    """A recipe that trains an MLP on the toy table in about a second."""
    base: dict[str, Any] = {
        "name": "fair_toy",
        "seed": 0,
        "data": {"name": NAME, "batch_size": 64, "val_fraction": 0.2, "test_fraction": 0.25},
        "model": {"name": "mlp", "hidden": [16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "trainer": {"max_epochs": 8, "progress": "off", "monitor": "val/accuracy", "monitor_mode": "max", "num_threads": 1},
        "metrics": ["accuracy"],
        "output_dir": str(out),
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base
