"""Initialisation by name: He keeps a 50-layer ReLU MLP's signal; N(0, 1) explodes; too small vanishes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.nn.init import init_weights


def _signal(scheme: str, *, std: float = 0.02, seed: int = 0, width: int = 256) -> torch.Tensor:
    """E[a_l^2] / E[x^2] after each of 50 Linear-ReLU layers: the signal power He init keeps at 1."""
    net = nn.Sequential(*[m for _ in range(50) for m in (nn.Linear(width, width), nn.ReLU())])
    init_weights(net, scheme, nonlinearity="relu", std=std, seed=seed)
    x = torch.randn(64, width, generator=torch.Generator().manual_seed(100 + seed))
    ratios = []
    with torch.no_grad():
        h = x
        for i, module in enumerate(net):
            h = module(h)
            if i % 2:  # after each ReLU
                ratios.append(h.pow(2).mean() / x.pow(2).mean())
    return torch.stack(ratios)


def test_he_init_keeps_the_signal_through_50_relu_layers() -> None:
    # He's derivation is about the expectation over random weights; one finite-width network
    # drifts like a random walk in log-space, so average 8 independent networks.
    mean = torch.stack([_signal("he", seed=s) for s in range(8)]).mean(dim=0)
    assert (mean > 0.5).all() and (mean < 2.0).all(), mean


def test_unit_normal_init_explodes_and_tiny_init_vanishes() -> None:
    exploded = _signal("normal", std=1.0)[-1]
    assert not torch.isfinite(exploded) or exploded > 1e30
    assert _signal("normal", std=0.01)[-1] < 1e-30


@pytest.mark.parametrize(("scheme", "fan_var"), [("xavier_normal", lambda i, o: 2 / (i + o)), ("lecun_normal", lambda i, o: 1 / i)])
def test_variance_follows_the_scheme(scheme: str, fan_var) -> None:
    layer = nn.Linear(400, 200)
    init_weights(layer, scheme, nonlinearity="linear", seed=0)
    assert layer.weight.var().item() == pytest.approx(fan_var(400, 200), rel=0.05)
    assert torch.equal(layer.bias, torch.zeros(200))


def test_orthogonal_init_preserves_norms() -> None:
    layer = nn.Linear(64, 64)
    init_weights(layer, "orthogonal", nonlinearity="linear", seed=0)
    torch.testing.assert_close(layer.weight @ layer.weight.T, torch.eye(64), atol=1e-5, rtol=0)


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(UserError, match="did you mean kaiming_normal"):
        init_weights(nn.Linear(2, 2), "kaiming_norml")  # type: ignore[arg-type]
