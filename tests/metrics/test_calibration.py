"""Calibration measures: ECE equal to torchmetrics, the other measures equal to their definitions."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from deepstrata.errors import UserError
from deepstrata.metrics.calibration import (
    brier_score,
    calibration_report,
    classwise_calibration_error,
    ece_floor,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)


def _predictions(seed: int, n: int = 500, k: int = 7, sharp: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = sharp * torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += 2.0
    return logits.softmax(1), labels


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_equals_torchmetrics_on_random_predictions(seed: int, n_bins: int) -> None:
    probs, labels = _predictions(seed)
    theirs = multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    assert abs(expected_calibration_error(probs, labels, n_bins=n_bins) - float(theirs)) < 1e-6
    theirs_max = multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=n_bins, norm="max")
    assert abs(maximum_calibration_error(probs, labels, n_bins=n_bins) - float(theirs_max)) < 1e-6


def test_ece_equals_torchmetrics_when_confidences_saturate_at_one() -> None:
    """A float32 softmax of a trained-out model gives exactly 1.0; torchmetrics bins it alone, so do we."""
    probs, labels = _predictions(0, sharp=40.0)
    assert (probs.max(1).values == 1.0).sum() > 50
    theirs = multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=15, norm="l1")
    assert abs(expected_calibration_error(probs, labels) - float(theirs)) < 1e-6


def test_ece_of_a_hand_made_example() -> None:
    """Two bins: {0.9, 0.9} with one hit, {0.6} with one hit -> (2/3)|0.5 - 0.9| + (1/3)|1 - 0.6|."""
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    assert maximum_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4)


def test_equal_mass_bins_hold_equal_counts() -> None:
    probs, labels = _predictions(1, n=300)
    conf, pred = probs.max(1)
    bins = reliability_bins(conf, (pred == labels).double(), n_bins=10, binning="mass")
    assert bins.count.tolist() == [30] * 10
    # by definition: sort confidences, cut into 10 groups of 30, weighted mean of |acc - conf|
    order = conf.double().argsort(stable=True)
    c, hit = conf.double()[order], (pred == labels).double()[order]
    direct = sum(abs(float(hit[i : i + 30].mean() - c[i : i + 30].mean())) * 30 / 300 for i in range(0, 300, 30))
    assert expected_calibration_error(probs, labels, n_bins=10, binning="mass") == pytest.approx(direct, abs=1e-12)


def test_classwise_nll_and_brier_follow_their_definitions() -> None:
    probs, labels = _predictions(2, n=200, k=4)
    p = probs.double()
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    assert brier_score(probs, labels) == pytest.approx(float(((p - onehot) ** 2).sum(1).mean()), abs=1e-12)
    assert negative_log_likelihood(probs, labels) == pytest.approx(float(torch.nn.functional.nll_loss(p.log(), labels)), abs=1e-12)
    per_class = []
    for k in range(4):
        bins = reliability_bins(p[:, k], (labels == k).double(), n_bins=15)
        per_class.append(float((bins.gaps * bins.count).sum() / 200))
    assert classwise_calibration_error(probs, labels) == pytest.approx(sum(per_class) / 4, abs=1e-12)
    report = calibration_report(probs, labels)
    assert set(report) == {"accuracy", "ece", "ece_mass", "mce", "classwise_ece", "nll", "brier"}
    assert report["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).double().mean()))


def test_a_perfectly_calibrated_predictor_has_small_ece() -> None:
    """Labels drawn from the predicted probabilities themselves: ECE shrinks towards 0 as N grows."""
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(2 * torch.randn(20000, 3, generator=g), 1)
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
    assert expected_calibration_error(probs, labels) < 0.015


def test_ece_floor_is_the_mean_ece_of_labels_drawn_from_the_confidences() -> None:
    """The floor by its definition: correctness drawn as Bernoulli(confidence), ECE averaged over draws."""
    probs, _ = _predictions(4, n=800)
    conf, pred = probs.max(1)
    g = torch.Generator().manual_seed(0)
    hits = torch.bernoulli(conf.double().expand(50, -1), generator=g)
    by_hand = []
    for row in hits:  # a label equal to the prediction where the draw says "correct", another class where not
        labels = torch.where(row.bool(), pred, (pred + 1) % probs.shape[1])
        by_hand.append(expected_calibration_error(probs, labels))
    assert ece_floor(probs, draws=50, seed=0) == pytest.approx(sum(by_hand) / len(by_hand), abs=1e-12)


def test_ece_floor_shrinks_as_one_over_root_n_and_a_calibrated_model_sits_on_it() -> None:
    g = torch.Generator().manual_seed(5)
    probs = torch.softmax(3 * torch.randn(40000, 10, generator=g), 1)
    small, large = ece_floor(probs[:1000]), ece_floor(probs)
    assert large < small / 4  # 40x the samples: about sqrt(40) = 6.3x smaller
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)  # calibrated by construction
    assert expected_calibration_error(probs, labels) < 2 * large
    overconfident = torch.softmax(3 * torch.log(probs), 1)  # the same predictions, sharpened (T = 1/3)
    assert expected_calibration_error(overconfident, labels) > 5 * ece_floor(overconfident)


@pytest.mark.parametrize(
    ("probs", "labels", "says"),
    [
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), "apply softmax"),
        (torch.full((4, 3), 1 / 3), torch.tensor([0.0, 1, 2, 0]), "integer tensor"),
        (torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 2]), "same N"),
        (torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 5, 0]), "labels in [0, 3)"),
        (torch.full((4,), 0.5), torch.tensor([0, 1, 1, 0]), "shape (N, K)"),
    ],
)
def test_bad_inputs_are_one_line_user_errors(probs: torch.Tensor, labels: torch.Tensor, says: str) -> None:
    with pytest.raises(UserError, match=says.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        expected_calibration_error(probs, labels)
