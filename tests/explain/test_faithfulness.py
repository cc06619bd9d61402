"""Deletion and insertion curves (Petsiuk et al. 2018) against their definition on models whose answer is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.explain.faithfulness import auc, deletion_curve, insertion_curve, random_attribution, reduce_to_positions


class Linear2(nn.Module):
    """Logits (w . x, 0): the probability of class 0 is sigmoid(w . x), and w * x is each pixel's exact share."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x * self.w).flatten(1).sum(1)
        return torch.stack([score, torch.zeros_like(score)], 1)


def test_curve_equals_the_written_out_definition() -> None:
    w = torch.tensor([[[1.0, -2.0], [3.0, 0.5]]])  # (1, 2, 2)
    x = torch.ones(1, 1, 2, 2)
    model = Linear2(w)
    target = torch.tensor([0])
    attribution = w.unsqueeze(0) * x  # ranks positions 3.0, 1.0, 0.5, -2.0
    dele = deletion_curve(model, x, target, attribution, steps=4)
    ins = insertion_curve(model, x, target, attribution, steps=4)
    # deleting in that order leaves the sums 2.5, -0.5, -1.5, -2.0, 0.0
    assert torch.allclose(dele[0], torch.sigmoid(torch.tensor([2.5, -0.5, -1.5, -2.0, 0.0])), atol=1e-6)
    # inserting in that order builds 0, 3, 4, 4.5, 2.5
    assert torch.allclose(ins[0], torch.sigmoid(torch.tensor([0.0, 3.0, 4.0, 4.5, 2.5])), atol=1e-6)
    assert auc(dele)[0] == pytest.approx(float((dele[0, 1:] + dele[0, :-1]).sum() / 8), abs=1e-7)


def test_auc_is_the_trapezoid_area_over_unit_interval() -> None:
    assert auc(torch.ones(1, 11))[0] == pytest.approx(1.0)
    assert auc(torch.linspace(0, 1, 29).unsqueeze(0))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        auc(torch.ones(1, 1))


def test_the_true_attribution_of_a_linear_model_beats_a_random_one() -> None:
    torch.manual_seed(0)
    w = torch.randn(1, 8, 8)
    x = torch.rand(64, 1, 8, 8)
    model = Linear2(w * 0.5)
    target = torch.zeros(64, dtype=torch.long)
    true = w.unsqueeze(0) * x
    rand = random_attribution(x, seed=1)
    assert rand.shape == (64, 1, 8, 8)
    d_true, d_rand = auc(deletion_curve(model, x, target, true)), auc(deletion_curve(model, x, target, rand))
    i_true, i_rand = auc(insertion_curve(model, x, target, true)), auc(insertion_curve(model, x, target, rand))
    assert d_true.mean() < d_rand.mean() - 0.1
    assert i_true.mean() > i_rand.mean() + 0.1
    # for a linear score, removing the largest shares first is the fastest descent: no image does better at random
    assert bool((d_true <= d_rand + 1e-6).all()) and bool((i_true >= i_rand - 1e-6).all())


def test_channels_of_a_position_change_together_and_coarse_maps_are_resized() -> None:
    x = torch.rand(2, 3, 4, 4)
    per_pixel = torch.rand(2, 3, 4, 4)
    assert torch.allclose(reduce_to_positions(per_pixel, x), per_pixel.sum(1).reshape(2, 16))
    coarse = torch.rand(2, 1, 2, 2)
    assert reduce_to_positions(coarse, x).shape == (2, 16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    curve = deletion_curve(model, x, torch.tensor([0, 1]), coarse, steps=4, baseline=0.0)
    assert curve.shape == (2, 5)
    with torch.no_grad():
        assert torch.allclose(curve[:, -1], model(torch.zeros_like(x)).softmax(1)[torch.arange(2), torch.tensor([0, 1])], atol=1e-6)
        assert torch.allclose(curve[:, 0], model(x).softmax(1)[torch.arange(2), torch.tensor([0, 1])], atol=1e-6)


def test_the_model_mode_is_restored() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).train()
    deletion_curve(model, torch.rand(1, 1, 2, 2), torch.tensor([0]), torch.rand(1, 1, 2, 2), steps=2)
    assert model.training
