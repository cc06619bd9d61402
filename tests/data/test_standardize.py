"""Standardisation is fitted on the training rows alone and replayed exactly at prediction."""

from __future__ import annotations

import pytest
import torch

from deepstrata.data.base import build_data
from deepstrata.data.standardize import Standardize
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS


def test_standardize_matches_scikit_learn() -> None:
    from sklearn.preprocessing import StandardScaler

    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5
    ours = Standardize().fit_transform(x)
    ref = torch.tensor(StandardScaler().fit_transform(x.numpy()), dtype=torch.float32)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_constant_feature_maps_to_zero_not_nan() -> None:
    x = torch.tensor([[1.0, 3.0], [2.0, 3.0], [3.0, 3.0]])
    z = Standardize().fit_transform(x)
    assert torch.isfinite(z).all() and torch.all(z[:, 1] == 0)


def test_fit_refuses_nan_with_a_clear_error() -> None:
    with pytest.raises(DataError, match="NaN"):
        Standardize().fit(torch.tensor([[1.0], [float("nan")]]))


def test_statistics_come_from_the_training_rows_only() -> None:
    raw = DATASETS.get("wine")().x
    bundle = build_data("wine", seed=3, val_fraction=0.1, test_fraction=0.2)
    train_idx = torch.tensor(bundle.train.indices)
    test_idx = torch.tensor(bundle.test.indices)
    mean = torch.tensor(bundle.input_spec["mean"], dtype=torch.float64)
    std = torch.tensor(bundle.input_spec["std"], dtype=torch.float64)
    torch.testing.assert_close(mean, raw[train_idx].double().mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(std, raw[train_idx].double().std(0, unbiased=False), rtol=1e-6, atol=1e-6)
    # The whole table's statistics differ: using them would have leaked the test rows.
    assert not torch.allclose(mean, raw.double().mean(0), rtol=1e-4)
    # Test rows are mapped with the training statistics, and the spec reproduces the mapping.
    x_test = torch.stack([bundle.test[i][0] for i in range(len(test_idx))])
    torch.testing.assert_close(x_test, ((raw[test_idx].double() - mean) / std).float(), atol=1e-5, rtol=1e-5)
    x_train = torch.stack([bundle.train[i][0] for i in range(len(train_idx))])
    assert x_train.mean(0).abs().max() < 1e-4 and (x_train.std(0, unbiased=False) - 1).abs().max() < 1e-4
