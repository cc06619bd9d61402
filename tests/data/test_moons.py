"""Two moons: fixed seed, shapes, labels, the fixed standardisation."""

from __future__ import annotations

import pytest
import torch

from deepstrata.data.moons import moons
from deepstrata.errors import DataError


def test_same_seed_same_points_and_labels() -> None:
    a, b = moons(n_samples=200, seed=3), moons(n_samples=200, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, moons(n_samples=200, seed=4).x)
    assert a.x.shape == (200, 2) and a.x.dtype == torch.float32
    assert set(a.y.tolist()) == {0, 1} and a.task == "classification"


def test_standardisation_is_a_fixed_affine_map() -> None:
    raw, std = moons(n_samples=2000, standardize=False), moons(n_samples=2000)
    torch.testing.assert_close(std.x, (raw.x - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5]))
    assert std.x.mean(0).abs().max() < 0.05 and (std.x.std(0) - 1).abs().max() < 0.05


def test_bad_arguments_are_data_errors() -> None:
    with pytest.raises(DataError, match="n_samples"):
        moons(n_samples=3)
    with pytest.raises(DataError, match="noise"):
        moons(noise=-0.1)
