"""Risk-coverage curves and AURC: a hand-made example, the direct definition, and the edge cases."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.metrics.selective import aurc, optimal_aurc, risk_at_coverage, risk_coverage_curve


def _direct_aurc(confidence: list[float], correct: list[bool]) -> float:
    """Sort by confidence (most confident first, ties in input order), then the mean of the cumulative error rates."""
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    errors, rates = 0, []
    for n, i in enumerate(order, start=1):
        errors += not correct[i]
        rates.append(errors / n)
    return sum(rates) / len(rates)


def test_a_hand_made_example() -> None:
    confidence = torch.tensor([0.6, 0.9, 0.7, 0.8])
    correct = torch.tensor([False, True, True, False])
    # Most confident first: 0.9 right, 0.8 wrong, 0.7 right, 0.6 wrong -> risks 0, 1/2, 1/3, 2/4.
    coverage, risk = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(coverage, torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    torch.testing.assert_close(risk, torch.tensor([0.0, 0.5, 1 / 3, 0.5], dtype=torch.float64))
    assert aurc(confidence, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert optimal_aurc(correct) == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)  # both errors ranked last
    assert risk_at_coverage(confidence, correct, 0.5) == 0.5
    assert risk_at_coverage(confidence, correct, 0.6) == pytest.approx(1 / 3)  # ceil(0.6 * 4) = 3 answered
    assert risk_at_coverage(confidence, correct, 1.0) == 0.5  # full coverage: the plain error rate


@pytest.mark.parametrize("seed", range(5))
def test_aurc_equals_the_direct_definition(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    confidence = torch.rand(200, generator=g).round(decimals=1)  # many ties: input order breaks them
    correct = torch.rand(200, generator=g) < confidence  # confident ones tend to be right
    assert aurc(confidence, correct) == pytest.approx(_direct_aurc(confidence.tolist(), correct.tolist()), abs=1e-12)
    assert optimal_aurc(correct) <= aurc(confidence, correct) <= aurc(-confidence, correct)  # a good ranking beats its reverse


def test_ninety_percent_coverage_of_ten_is_nine() -> None:
    confidence = torch.arange(10, 0, -1).float()
    correct = torch.tensor([True] * 8 + [False, False])
    assert risk_at_coverage(confidence, correct, 0.9) == pytest.approx(1 / 9)


def test_bad_inputs_are_user_errors() -> None:
    with pytest.raises(UserError, match="same shape"):
        aurc(torch.rand(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(UserError, match="NaN"):
        aurc(torch.tensor([0.1, float("nan")]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(UserError, match=r"coverage must lie in \(0, 1\]"):
        risk_at_coverage(torch.rand(3), torch.ones(3, dtype=torch.bool), 0.0)
