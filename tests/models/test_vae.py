"""VAE: analytic KL against Monte Carlo, the pathwise gradient, the ELBO's parts, a likelihood floor."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.models.vae import VAE, gaussian_kl
from tests.conftest import requires_shared_data


def test_analytic_kl_equals_a_monte_carlo_estimate() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 0.5
    n = 200_000
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = q.sample((n,))  # (n, 4, 3)
    log_ratio = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (n, 4)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n)
    analytic = gaussian_kl(mu, logvar)
    assert torch.all((mc - analytic).abs() < 4 * se), (mc, analytic, se)
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(analytic, ref)


def test_reparameterisation_gives_the_pathwise_gradient() -> None:
    """d/dmu E[z²] = 2 mu and d/dsigma E[z²] = 2 sigma for z = mu + sigma eps."""
    torch.manual_seed(0)
    mu = torch.tensor([0.7], requires_grad=True)
    logvar = torch.tensor([math.log(0.25)], requires_grad=True)
    z = VAE.reparameterize(mu.expand(400_000), logvar.expand(400_000))
    z.pow(2).mean().backward()
    assert mu.grad.item() == pytest.approx(1.4, abs=0.01)
    # d/dlogvar E[z²] = d/dlogvar exp(logvar) = sigma² = 0.25
    assert logvar.grad.item() == pytest.approx(0.25, abs=0.01)


def test_objective_is_reconstruction_plus_kl() -> None:
    torch.manual_seed(0)
    model = VAE(data_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    x = torch.bernoulli(torch.full((5, 1, 8, 8), 0.3))
    out = model.objective(x)
    torch.testing.assert_close(out["loss"], out["recon"] + out["kl"])
    assert out["kl"] >= 0 and out["recon"] > 0


def test_conditional_vae_needs_labels_to_sample_and_uses_them() -> None:
    torch.manual_seed(0)
    model = VAE(data_shape=(2,), latent_dim=2, hidden=(8,), likelihood="gaussian", num_classes=3).eval()
    from deepstrata.errors import UserError

    with pytest.raises(UserError, match="needs labels"):
        model.sample(4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.allclose(model.sample(4, y=torch.zeros(4, dtype=torch.long), generator=g()), model.sample(4, y=torch.full((4,), 2), generator=g()))


def test_shape_error_names_the_layer() -> None:
    model = VAE(data_shape=(1, 8, 8), latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match=r"VAE.encoder expected \(N, 1, 8, 8\) input, got \(2, 64\)"):
        model.encode(torch.zeros(2, 64))


@pytest.mark.e2e
@requires_shared_data("mnist")
def test_mnist_vae_short_run_beats_independent_pixels(tmp_path) -> None:
    """Negative ELBO on the once-binarised MNIST test set, well below a per-pixel Bernoulli fitted on train."""
    from deepstrata.api import train
    from deepstrata.data.binarized_mnist import binarized_mnist
    from deepstrata.metrics.pixel_baselines import bernoulli_nll

    result = train(
        "recipes/mnist_vae.yaml",
        [f"output_dir={tmp_path}", "data.limit=10000", "trainer.max_epochs=4", "~scheduler", "trainer.progress=off", "callbacks=[]"],
    )
    data = binarized_mnist(limit=10000)
    baseline = bernoulli_nll(data.x, data.test_x)  # a Bernoulli per pixel, fitted on train
    assert baseline > 190  # sanity: the known ~206 nats of independent pixels on MNIST
    assert result.metrics["test/loss"] < baseline - 40, (result.metrics, baseline)
    assert result.metrics["test/kl"] > 5  # the latent code is used (no posterior collapse)
