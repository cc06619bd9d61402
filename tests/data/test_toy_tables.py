"""The offline datasets: every one loads, with class names and an input spec, and splits cleanly."""

from __future__ import annotations

import pytest
import torch

from deepstrata.data.base import build_data
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS

TABLES = {
    # name: (rows, features, classes or None for regression)
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "diabetes": (442, 10, None),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_loads_offline_with_names_and_spec(name: str) -> None:
    rows, features, classes = TABLES[name]
    data = DATASETS.get(name)()
    data.validate(name)
    assert data.x.shape == (rows, features) and data.x.dtype == torch.float32
    assert data.standardize, "tables are standardised on the training split by build_data"
    assert len(data.input_spec["features"]) == features
    if classes is None:
        assert data.task == "regression" and data.y.shape == (rows, 1) and data.class_names is None
    else:
        assert data.task == "classification" and data.y.dtype == torch.int64
        assert data.class_names is not None and len(data.class_names) == classes
        assert set(data.y.tolist()) == set(range(classes))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_builds_into_a_split_bundle(name: str) -> None:
    bundle = build_data(name, seed=0, val_fraction=0.1, test_fraction=0.2)
    rows = TABLES[name][0]
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == rows
    assert bundle.model_defaults()["in_features"] == TABLES[name][1]
    assert len(bundle.input_spec["mean"]) == len(bundle.input_spec["std"]) == TABLES[name][1]


def test_digits_loads_offline() -> None:
    data = DATASETS.get("digits")()
    assert data.x.shape == (1797, 1, 8, 8) and float(data.x.max()) == 1.0 and data.class_names == [str(i) for i in range(10)]


def test_sample_images_are_the_two_photographs() -> None:
    data = DATASETS.get("sample_images")()
    assert data.x.shape == (2, 3, 427, 640) and data.class_names == ["china", "flower"]
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    assert not torch.equal(data.x[0], data.x[1])
    small = DATASETS.get("sample_images")(image_size=32)
    assert small.x.shape == (2, 3, 32, 32)
    # The resized photo keeps the original's average colour (bilinear resize, not garbage).
    assert torch.allclose(small.x.mean(dim=(2, 3)), data.x.mean(dim=(2, 3)), atol=0.02)


def test_sample_images_cannot_be_split_and_say_so() -> None:
    with pytest.raises(DataError, match="cannot be split"):
        build_data("sample_images", seed=0, val_fraction=0.1, test_fraction=0.2)
