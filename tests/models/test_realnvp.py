"""RealNVP: exact inverse, log-determinant against autograd's Jacobian, and a real density fit."""

from __future__ import annotations

import pytest
import torch

from deepstrata.models.realnvp import RealNVP, coupling_masks


def _random_flow(data_shape, num_levels=0, seed=0) -> RealNVP:
    """A flow with non-trivial couplings and initialised ActNorm (the zero-init identity would prove nothing)."""
    torch.manual_seed(seed)
    flow = RealNVP(data_shape=data_shape, num_couplings=4, hidden=16, layers=2, num_levels=num_levels).double()
    with torch.no_grad():
        for c in flow.couplings:
            c.net[-1].weight.normal_(0, 0.5)
            c.net[-1].bias.normal_(0, 0.5)
    flow.train()
    x0 = torch.rand(64, *data_shape, dtype=torch.float64) * 0.8 + 0.1
    flow(x0)  # ActNorm's data-dependent initialisation
    return flow.eval()


@pytest.mark.parametrize("shape,levels", [((4,), 0), ((1, 4, 4), 0), ((1, 4, 4), 17)])
def test_inverse_of_forward_is_identity(shape, levels) -> None:
    flow = _random_flow(shape, levels)
    x = torch.rand(16, *shape, dtype=torch.float64) * 0.8 + 0.1
    z, _ = flow(x)
    torch.testing.assert_close(flow.inverse(z), x, rtol=0, atol=1e-5)
    assert (z - x.flatten(1)).abs().max() > 0.1  # the flow is not the identity


@pytest.mark.parametrize("shape,levels", [((4,), 0), ((1, 2, 2), 0), ((1, 2, 3), 5)])
def test_log_determinant_matches_autograd_jacobian(shape, levels) -> None:
    flow = _random_flow(shape, levels)
    x = torch.rand(3, *shape, dtype=torch.float64) * 0.8 + 0.1
    _, logdet = flow(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, *shape))[0].squeeze(0), x[i].flatten())
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(logdet[i], logabs, rtol=1e-8, atol=1e-8)


def test_masks_alternate_and_cover_every_dimension() -> None:
    masks = coupling_masks((1, 4, 4), 2)
    assert torch.equal(masks[0] + masks[1], torch.ones(16, dtype=masks[0].dtype))
    img = masks[0].view(4, 4)
    assert img[0, 0] != img[0, 1] and img[0, 0] != img[1, 0]  # checkerboard


def test_log_prob_of_identity_flow_is_standard_normal() -> None:
    flow = RealNVP(data_shape=(3,), num_couplings=2, hidden=8).eval()  # zero-init couplings, ActNorm untouched: identity
    x = torch.randn(5, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_shape_error_names_the_layer() -> None:
    flow = RealNVP(data_shape=(2,), num_couplings=2, hidden=8)
    with pytest.raises(ValueError, match=r"RealNVP expected \(N, 2\) input, got \(4, 3\)"):
        flow(torch.zeros(4, 3))


@pytest.mark.e2e
def test_moons_flow_beats_a_gaussian_on_held_out_log_likelihood(tmp_path) -> None:
    from deepstrata.api import train
    from deepstrata.data.base import build_data

    result = train(
        "recipes/moons_realnvp.yaml",
        [f"output_dir={tmp_path}", "trainer.max_epochs=15", "trainer.progress=off", "callbacks=[]"],
    )
    flow_ll = -result.metrics["test/loss"]
    # Baseline: a full-covariance Gaussian fitted on the same training split.
    data = build_data("moons", seed=0, val_fraction=0.1, test_fraction=0.2)
    train = torch.stack([data.train[i][0] for i in range(len(data.train))]).double()
    test = torch.stack([data.test[i][0] for i in range(len(data.test))]).double()
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    gauss_ll = float(gauss.log_prob(test).mean())
    assert flow_ll > gauss_ll + 0.5, (flow_ll, gauss_ll)
