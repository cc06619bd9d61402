"""The threat model: the input box and the raw-pixel unit from a run's input spec; projections."""

from __future__ import annotations

import pytest
import torch

from deepstrata.attacks.base import input_box, lp_norm, margin, project, random_in_ball
from deepstrata.errors import UserError


def test_mnist_inputs_in_0_1_have_the_unit_box() -> None:
    lower, upper, unit = input_box({"scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw_max": 255.0}, [1, 28, 28])
    assert (float(lower), float(upper), float(unit)) == pytest.approx((0.0, 1.0, 1.0))


def test_normalised_inputs_convert_eps_through_the_std() -> None:
    """MNIST normalised by mean 0.1307, std 0.3081: the box is [-0.4242, 2.8215] and eps 0.3 is 0.3 / 0.3081."""
    lower, upper, unit = input_box({"scale": 1 / 255.0, "mean": 0.1307, "std": 0.3081, "raw_max": 255.0}, [1, 28, 28])
    assert float(lower) == pytest.approx(-0.1307 / 0.3081) and float(upper) == pytest.approx((1 - 0.1307) / 0.3081)
    assert 0.3 * float(unit) == pytest.approx(0.3 / 0.3081)


def test_per_channel_statistics_and_a_normalize_transform_compose() -> None:
    spec = {"scale": 1 / 255.0, "mean": [0.0, 0.5, 0.0], "std": [1.0, 0.5, 2.0], "raw_max": 255.0, "normalize": {"mean": [0.5, 0.0, 0.0], "std": [0.5, 1.0, 1.0]}}
    lower, upper, unit = input_box(spec, [3, 4, 4])
    assert lower.shape == (3, 1, 1)
    raw = torch.tensor([0.0, 255.0]).view(2, 1, 1, 1).expand(2, 3, 4, 4)
    mean, std = torch.tensor([0.0, 0.5, 0.0]).view(3, 1, 1), torch.tensor([1.0, 0.5, 2.0]).view(3, 1, 1)
    m, s = torch.tensor([0.5, 0.0, 0.0]).view(3, 1, 1), torch.tensor([0.5, 1.0, 1.0]).view(3, 1, 1)
    model_x = ((raw / 255.0 - mean) / std - m) / s  # the Predictor's preprocess of black and white images
    torch.testing.assert_close(lower.expand(3, 4, 4), model_x[0])
    torch.testing.assert_close(upper.expand(3, 4, 4), model_x[1])
    torch.testing.assert_close(unit.expand(3, 4, 4), model_x[1] - model_x[0])  # one raw [0, 1] unit


def test_inputs_without_a_raw_range_are_refused() -> None:
    with pytest.raises(UserError, match="no raw_max"):
        input_box({"scale": 1.0, "mean": [0.0], "std": [1.0]}, [4])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_starts_and_projections_land_in_the_ball(norm: str) -> None:
    start = random_in_ball(torch.Size([500, 3, 4, 4]), 0.5, norm, generator=torch.Generator().manual_seed(0), like=torch.zeros(1))
    sizes = lp_norm(start, norm)
    assert float(sizes.max()) <= 0.5 + 1e-6 and float(sizes.mean()) > 0.4  # uniform in the ball: most mass near the rim
    far = torch.randn(20, 3, 4, 4) * 10
    assert float(lp_norm(project(far, 0.5, norm), norm).max()) == pytest.approx(0.5, abs=1e-5)


def test_margin_is_true_logit_minus_the_best_other() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert margin(logits, torch.tensor([0, 2])).tolist() == [1.0, -4.0]
