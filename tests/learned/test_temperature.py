"""Temperature scaling: the fitted T is the NLL minimiser (checked against scipy) and undoes overconfidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepstrata.errors import UserError
from deepstrata.learned import NotFittedError
from deepstrata.learned.temperature import TemperatureScaler


def _overconfident(
    n: int = 4000, k: int = 6, sharpen: float = 3.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(s): logits s are calibrated by construction, `sharpen * s` is not."""
    g = torch.Generator().manual_seed(seed)
    s = 1.5 * torch.randn(n, k, generator=g)
    labels = torch.multinomial(s.softmax(1), 1, generator=g).squeeze(1)
    return sharpen * s, labels


def _scipy_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    z, y = logits.double().numpy(), labels.numpy()

    def nll(t: float) -> float:
        scaled = z / t
        return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(y)), y]))

    result = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-9})
    assert result.success
    return float(result.x)


def test_scaling_lowers_nll_on_an_overconfident_set() -> None:
    logits, labels = _overconfident()
    scaler = TemperatureScaler().fit(logits, labels)
    before = F.cross_entropy(logits, labels).item()
    after = F.cross_entropy(scaler.transform(logits), labels).item()
    assert after <= before - 0.1  # a large, not marginal, improvement
    assert scaler.nll_ == pytest.approx(after, rel=1e-5)
    # The logits were sharpened 3x from calibrated ones: the fit recovers roughly that factor.
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("sharpen", [3.0, 0.4])
def test_temperature_matches_scipy_minimize_scalar(sharpen: float) -> None:
    logits, labels = _overconfident(n=1500, sharpen=sharpen, seed=1)
    fitted = TemperatureScaler().fit(logits, labels).temperature_
    assert fitted == pytest.approx(_scipy_temperature(logits, labels), abs=1e-3)
    assert (fitted > 1) == (sharpen > 1)  # overconfident -> soften, underconfident -> sharpen


def test_the_fit_is_a_stationary_point_of_the_nll() -> None:
    """d NLL / d(1/T) = mean(E_p[z] - z_y) vanishes at the fitted T (first-order condition)."""
    logits, labels = _overconfident(n=1000, seed=2)
    z = logits.double()
    t = TemperatureScaler().fit(logits, labels).temperature_
    p = (z / t).softmax(1)
    grad = ((p * z).sum(1) - z[torch.arange(len(labels)), labels]).mean()
    assert abs(float(grad)) < 1e-6


def test_transform_keeps_argmax_dtype_and_gradients() -> None:
    logits, labels = _overconfident(n=500)
    scaler = TemperatureScaler().fit(logits, labels)
    x = logits[:50].clone().requires_grad_(True)
    out = scaler.transform(x)
    assert out.dtype == torch.float32 and out.shape == (50, 6)
    assert torch.equal(out.argmax(1), x.argmax(1))
    torch.testing.assert_close(out, x / scaler.temperature_)
    out.sum().backward()
    assert x.grad is not None
    proba = scaler.predict_proba(logits[:50])
    torch.testing.assert_close(proba.sum(1), torch.ones(50))
    assert scaler.transform(logits.double()).dtype == torch.float64


def test_separable_data_ends_at_the_lower_bound() -> None:
    labels = torch.arange(4).repeat(10)
    logits = F.one_hot(labels, 4).float()  # every prediction right with a margin: T -> 0 keeps helping
    scaler = TemperatureScaler(min_temperature=0.1).fit(logits, labels)
    assert scaler.temperature_ == pytest.approx(0.1, rel=1e-5)
    # With a wide margin the NLL reaches 0.0 in float64 before the bound; the fit stops where it does.
    wide = TemperatureScaler().fit(20.0 * logits, labels)
    assert wide.nll_ == 0.0 and wide.temperature_ < 1.0


def test_constant_logits_leave_t_at_the_bracket_centre() -> None:
    """softmax of equal logits ignores T; ties keep the search at T = 1, the identity, not at a bound."""
    scaler = TemperatureScaler().fit(torch.zeros(10, 3), torch.arange(10) % 3)
    assert scaler.temperature_ == pytest.approx(1.0, rel=1e-5)


def test_not_fitted_message() -> None:
    with pytest.raises(NotFittedError, match=r"^TemperatureScaler is not fitted yet; call fit\(logits, labels\) first$"):
        TemperatureScaler().transform(torch.zeros(2, 3))


def test_errors_name_the_expected_and_received_shapes() -> None:
    logits, labels = _overconfident(n=20, k=4)
    expected = (
        r"TemperatureScaler\.fit expected logits as a floating-point tensor of shape \(N, K\), "
        r"got shape \(20, 4, 1\) dtype torch\.float32"
    )
    with pytest.raises(UserError, match=expected):
        TemperatureScaler().fit(logits[:, :, None], labels)
    with pytest.raises(UserError, match=r"labels as an integer tensor of shape \(N,\), got shape \(20,\) dtype torch\.float"):
        TemperatureScaler().fit(logits, labels.float())
    with pytest.raises(UserError, match=r"same N samples, got logits of shape \(20, 4\) and labels of shape \(19,\)"):
        TemperatureScaler().fit(logits, labels[:-1])
    with pytest.raises(UserError, match=r"labels in \[0, K\) = \[0, 4\).*got values from -1"):
        TemperatureScaler().fit(logits, labels - 1)
    with pytest.raises(UserError, match="K >= 2"):
        TemperatureScaler().fit(logits[:, :1], torch.zeros(20, dtype=torch.long))
    wrong_k = r"transform expected logits of shape \(N, 4\) \(fitted on 4 classes\), got shape \(20, 3\)"
    with pytest.raises(UserError, match=wrong_k):
        TemperatureScaler().fit(logits, labels).transform(logits[:, :3])


@pytest.mark.parametrize(
    "kwargs", [{"min_temperature": 0.0}, {"min_temperature": 5.0, "max_temperature": 2.0}, {"tol": 0.0}]
)
def test_invalid_parameters_are_refused_at_fit(kwargs: dict) -> None:
    scaler = TemperatureScaler(**kwargs)  # __init__ only stores, like scikit-learn
    with pytest.raises(UserError, match="TemperatureScaler needs"):
        scaler.fit(*_overconfident(n=20))
