"""Entropy and mutual information: closed forms, scipy's entropy, and the decomposition's identities."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.metrics.uncertainty import entropy, expected_entropy, mutual_information, predictive_entropy


def test_entropy_equals_scipy() -> None:
    from scipy.stats import entropy as scipy_entropy

    probs = torch.rand(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).softmax(1)
    probs[0] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # 0 log 0 = 0
    torch.testing.assert_close(entropy(probs), torch.tensor(scipy_entropy(probs.numpy(), axis=1)))
    assert float(entropy(torch.full((5,), 0.2))) == pytest.approx(math.log(5))


def test_agreeing_samples_have_no_mutual_information() -> None:
    p = torch.rand(3, 5, generator=torch.Generator().manual_seed(1)).softmax(1)
    samples = p.expand(7, 3, 5)  # every sample says the same: all doubt is aleatoric
    torch.testing.assert_close(mutual_information(samples), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(predictive_entropy(samples), entropy(p))


def test_confident_disagreement_is_all_epistemic() -> None:
    samples = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (S=2, N=1, K=2): each sure, of different classes
    assert float(expected_entropy(samples)) == 0.0
    assert float(predictive_entropy(samples)) == pytest.approx(math.log(2))
    assert float(mutual_information(samples)) == pytest.approx(math.log(2))


def test_the_decomposition_holds_and_is_bounded() -> None:
    samples = torch.rand(10, 50, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64).mul(3).softmax(-1)
    total, aleatoric, epistemic = predictive_entropy(samples), expected_entropy(samples), mutual_information(samples)
    torch.testing.assert_close(total, aleatoric + epistemic)
    assert bool((epistemic >= 0).all()) and bool((total <= math.log(4) + 1e-12).all())


def test_wrong_shapes_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"\(S, N, K\)"):
        mutual_information(torch.rand(3, 4))
