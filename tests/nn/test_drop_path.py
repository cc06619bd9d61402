"""DropPath: identity at evaluation; in training each sample's branch is dropped or scaled by 1/(1-p)."""

from __future__ import annotations

import pytest
import torch

from deepstrata.nn.drop_path import DropPath, drop_path


def test_identity_at_evaluation_and_at_zero_rate() -> None:
    x = torch.randn(8, 3, 4, 4)
    assert torch.equal(DropPath(0.5).eval()(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_whole_samples_are_dropped_or_rescaled_and_the_mean_is_kept() -> None:
    p = 0.3
    x = torch.ones(20_000, 5)
    out = drop_path(x, p, training=True, generator=torch.Generator().manual_seed(0))
    # Every sample is either all zeros or all 1/(1-p): one coin per sample, not per unit.
    rows = out.unique(dim=0)
    assert rows.shape[0] == 2
    torch.testing.assert_close(rows.sort(dim=0).values[:, 0], torch.tensor([0.0, 1 / (1 - p)]))
    assert abs((out[:, 0] == 0).float().mean().item() - p) < 0.015  # about p of the samples dropped
    assert abs(out.mean().item() - 1.0) < 0.02  # the expectation is unchanged


def test_rejects_a_probability_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="DropPath probability"):
        DropPath(1.0)
