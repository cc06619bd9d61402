"""Recalibrators: each equals its reference or definition, and its map is what a saved model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned.histogram_binning import HistogramBinning
from deepstrata.learned.isotonic import IsotonicCalibrator
from deepstrata.learned.platt import PlattScaler
from deepstrata.learned.temperature import TemperatureScaler
from deepstrata.learned.vector_scaling import VectorScaler
from deepstrata.metrics.calibration import expected_calibration_error, negative_log_likelihood


def _overconfident(seed: int, n: int = 2000, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += 1.5
    return 4.0 * logits, labels


@pytest.mark.parametrize("cls", [TemperatureScaler, VectorScaler, HistogramBinning, IsotonicCalibrator])
def test_each_recalibrator_cuts_ece_on_held_out_overconfident_logits(cls: type) -> None:
    fit_z, fit_y = _overconfident(0)
    test_z, test_y = _overconfident(1)
    before = expected_calibration_error(test_z.softmax(1), test_y)
    after = expected_calibration_error(cls().fit(fit_z, fit_y).predict_proba(test_z), test_y)
    assert before > 0.15 and after < before / 3


def test_temperature_never_changes_the_argmax_and_its_map_divides_by_t() -> None:
    z, y = _overconfident(0)
    scaler = TemperatureScaler().fit(z, y)
    assert scaler.temperature_ > 2
    mapped = scaler.calibration_map()(z)
    torch.testing.assert_close(mapped, z / scaler.temperature_, rtol=1e-6, atol=1e-6)
    assert torch.equal(mapped.argmax(1), z.argmax(1))


def test_vector_scaling_reaches_the_nll_minimum() -> None:
    """At the fitted (w, b) the NLL's gradient vanishes, and it is no worse than the best temperature."""
    z, y = _overconfident(2)
    vec = VectorScaler().fit(z, y)
    w = vec.scale_.clone().requires_grad_(True)
    b = vec.offset_.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(z.double() * w + b, y)
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-5 and float(b.grad.abs().max()) < 1e-5
    assert vec.nll_ <= TemperatureScaler().fit(z, y).nll_ + 1e-9


def test_histogram_binning_maps_each_bin_to_its_frequency() -> None:
    z, y = _overconfident(3, n=600, k=3)
    hb = HistogramBinning(n_bins=5).fit(z, y)
    p = z.double().softmax(1)
    for k in range(3):
        for b in range(5):
            inside = (p[:, k] >= b / 5) & ((p[:, k] < (b + 1) / 5) | ((b == 4) & (p[:, k] == 1)))
            if inside.any():
                assert hb.values_[k, b] == pytest.approx(float((y[inside] == k).double().mean()))
    # the saved map looks the same bins up (then renormalises over classes)
    q = torch.stack([hb.values_[k][(p[:, k] * 5).floor().clamp(max=4).long()] for k in range(3)], 1)
    torch.testing.assert_close(hb.predict_proba(z).double(), q / q.sum(1, keepdim=True), rtol=1e-5, atol=1e-6)


def test_isotonic_equals_scikit_learn_before_renormalisation() -> None:
    from sklearn.isotonic import IsotonicRegression

    z, y = _overconfident(4, n=800, k=3)
    iso = IsotonicCalibrator().fit(z, y)
    p = z.double().softmax(1)
    theirs = np.stack([IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p[:, k].numpy(), (y == k).numpy().astype(float)).predict(p[:, k].numpy()) for k in range(3)], 1)
    ours = iso.calibration_map()._lookup(p.float()).double().numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    # the saved model works in float32 (probabilities and knots): the same lookup, renormalised; a
    # knot rounded to float32 moves a steep segment by ~1e-5
    p32 = z.softmax(1).double().numpy()
    fits = [IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p[:, k].numpy(), (y == k).numpy().astype(float)) for k in range(3)]
    theirs = np.stack([fits[k].predict(p32[:, k]) for k in range(3)], 1)
    np.testing.assert_allclose(iso.predict_proba(z).numpy(), theirs / theirs.sum(1, keepdims=True), atol=5e-5)


def test_platt_equals_an_unregularised_logistic_regression_on_the_logit_difference() -> None:
    from sklearn.linear_model import LogisticRegression

    z, y = _overconfident(5, n=1000, k=2)
    platt = PlattScaler().fit(z, y)
    s = (z[:, 1] - z[:, 0]).double().numpy()[:, None]
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(s, y.numpy())
    assert platt.slope_ == pytest.approx(float(ref.coef_[0, 0]), rel=1e-4)
    assert platt.intercept_ == pytest.approx(float(ref.intercept_[0]), abs=1e-4)
    np.testing.assert_allclose(platt.predict_proba(z)[:, 1].numpy(), ref.predict_proba(s)[:, 1], atol=1e-5)
    assert negative_log_likelihood(platt.predict_proba(z), y) < negative_log_likelihood(z.softmax(1), y)


def test_platt_refuses_more_than_two_classes() -> None:
    z, y = _overconfident(6, n=50, k=3)
    with pytest.raises(UserError, match="binary classifiers"):
        PlattScaler().fit(z, y)
