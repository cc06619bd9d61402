"""DDPM: the closed-form forward process, the schedules, the score view, DDIM and guidance, a 2-D fit."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.models.ddpm import DDPM, noise_schedule, score_from_eps


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_q_matches_iterating_the_forward_process(schedule) -> None:
    """x_t from t single steps x_s = √(1-β_s) x_(s-1) + √β_s eps has mean √ᾱ_t x0 and variance 1-ᾱ_t."""
    model = DDPM(data_shape=(3,), timesteps=100, schedule=schedule, hidden=8)
    gen = torch.Generator().manual_seed(0)
    n = 10_000
    x0 = torch.tensor([1.5, -0.5, 0.0]).expand(n, 3)
    x = x0.clone().double()
    betas = model.betas.double()
    checkpoints = {10, 50, 99}
    for s in range(100):
        x = (1 - betas[s]).sqrt() * x + betas[s].sqrt() * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        if s in checkpoints:
            t = torch.full((n,), s)
            closed = model.q_sample(x0, t, torch.randn(x0.shape, generator=gen)).double()
            abar = float(model.alphas_cumprod[s])
            # Both match the analytic moments (5 standard errors), and each other.
            se_mean = math.sqrt((1 - abar) / n)
            for sample in (x, closed):
                assert torch.allclose(sample.mean(0), math.sqrt(abar) * x0[0].double(), atol=5 * se_mean)
                assert torch.allclose(sample.var(0), torch.full((3,), 1 - abar, dtype=torch.float64), rtol=0.05, atol=1e-3)


def test_schedules() -> None:
    lin = noise_schedule("linear", 1000)
    assert float(lin[0]) == pytest.approx(1e-4) and float(lin[-1]) == pytest.approx(0.02)
    cos = noise_schedule("cosine", 1000)
    abar = torch.cumprod(1 - cos, 0)
    t = torch.tensor([0.25, 0.5, 0.75]) * 1000
    f = lambda u: math.cos((u / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for ti in t.long().tolist():
        assert float(abar[ti - 1]) == pytest.approx(f(ti) / f(0), rel=1e-6)
    for betas in (lin, cos):
        a = torch.cumprod(1 - betas, 0)
        assert torch.all(a[1:] < a[:-1]) and float(a[-1]) < 1e-3  # monotone and near pure noise at T
    with pytest.raises(ValueError, match="linear or cosine"):
        noise_schedule("quadratic", 10)


def test_optimal_noise_prediction_is_the_scaled_score_denoising_score_matching() -> None:
    """Data x0 ~ N(m, s²): q_t = N(√ᾱ m, ᾱ s² + 1 - ᾱ) in closed form. The conditional mean
    eps*(x_t) = E[eps | x_t] minimises the DDPM loss, and -eps*/√(1-ᾱ) equals ∇ log q_t exactly."""
    m, s, abar = 1.0, 0.5, 0.3
    var_t = abar * s**2 + 1 - abar
    x_t = torch.linspace(-3, 3, 7, dtype=torch.float64)
    eps_star = math.sqrt(1 - abar) * (x_t - math.sqrt(abar) * m) / var_t  # E[eps | x_t] (Gaussian conditioning)
    analytic_score = -(x_t - math.sqrt(abar) * m) / var_t
    torch.testing.assert_close(score_from_eps(eps_star, torch.tensor(abar, dtype=torch.float64)), analytic_score)
    # eps* minimises E||eps_θ(x_t) - eps||² (Monte Carlo, fixed seed): shifting or scaling it costs.
    gen = torch.Generator().manual_seed(0)
    x0 = m + s * torch.randn(200_000, generator=gen, dtype=torch.float64)
    eps = torch.randn(200_000, generator=gen, dtype=torch.float64)
    xt = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps

    def loss(a: float, b: float) -> float:
        pred = a * math.sqrt(1 - abar) * (xt - math.sqrt(abar) * m) / var_t + b
        return float((pred - eps).pow(2).mean())

    best = loss(1.0, 0.0)
    for a, b in ((1.1, 0.0), (0.9, 0.0), (1.0, 0.05), (1.0, -0.05)):
        assert loss(a, b) > best


def test_ddim_is_deterministic_and_ddpm_is_not() -> None:
    torch.manual_seed(0)
    model = DDPM(data_shape=(2,), timesteps=50, hidden=16).eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, b = model.sample(4, steps=10, generator=g()), model.sample(4, steps=10, generator=g())
    assert torch.equal(a, b) and a.shape == (4, 2)
    c = model.sample(4, generator=g())  # full ancestral chain
    assert c.shape == (4, 2) and torch.isfinite(c).all()
    with pytest.raises(ValueError, match="steps must be in 1..50"):
        model.sample(2, steps=51)


def test_classifier_free_guidance_combines_conditional_and_unconditional_predictions() -> None:
    torch.manual_seed(0)
    model = DDPM(data_shape=(1, 8, 8), timesteps=20, base_channels=8, channel_mults=(1, 2), num_classes=3).eval()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 7]), torch.tensor([0, 2])
    cond, uncond = model(x, t, y), model(x, t)  # no label = the null class
    torch.testing.assert_close(model._eps(x, t, y, 2.0), 3 * cond - 2 * uncond, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model._eps(x, t, y, 0.0), cond)
    assert not torch.allclose(cond, uncond)


def test_label_dropout_trains_the_null_class() -> None:
    torch.manual_seed(0)
    model = DDPM(data_shape=(2,), timesteps=10, hidden=8, num_classes=2, p_uncond=1.0)
    model.objective(torch.randn(8, 2), torch.tensor([0, 1] * 4))["loss"].backward()
    emb = model.denoiser.class_emb.weight.grad
    assert emb[:2].abs().sum() == 0 and emb[2].abs().sum() > 0  # every label dropped -> only "no label" learns


class _ExactGaussianDenoiser(torch.nn.Module):
    """The optimal eps for Gaussian data N(m, diag s²): E[eps | x_t] = √(1-ᾱ)(x_t - √ᾱ m) / (ᾱ s² + 1 - ᾱ)."""

    def __init__(self, abar: torch.Tensor, m: torch.Tensor, s: torch.Tensor):
        super().__init__()
        self.abar, self.m, self.s = abar, m, s

    def forward(self, x, t, y=None):
        a = self.abar[t].view(-1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)


@pytest.mark.parametrize("schedule,steps", [("linear", None), ("linear", 50), ("cosine", None), ("cosine", 50)])
def test_samplers_with_the_exact_denoiser_reproduce_gaussian_data(schedule, steps) -> None:
    """With the true noise predictor, ancestral DDPM and 50-step DDIM both land on the data distribution.

    DDIM's 50 large steps discretise an ODE, so its spread is allowed a little more error.
    """
    model = DDPM(data_shape=(2,), timesteps=200, schedule=schedule, hidden=8).eval()
    m, s = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    model.denoiser = _ExactGaussianDenoiser(model.alphas_cumprod, m, s)
    x = model.sample(2_000, steps=steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.mean(0), m, atol=0.15, rtol=0)  # 3.3 standard errors for s = 2
    torch.testing.assert_close(x.std(0), s, rtol=0.05 if steps is None else 0.08, atol=0)


@pytest.mark.e2e
def test_moons_diffusion_samples_are_closer_to_held_out_data_than_a_gaussian(tmp_path) -> None:
    from deepstrata.api import train
    from deepstrata.api import load
    from deepstrata.data.base import build_data
    from deepstrata.metrics.energy_distance import energy_distance

    result = train("recipes/moons_ddpm.yaml", [f"output_dir={tmp_path}", "trainer.max_epochs=20", "trainer.progress=off", "callbacks=[]"])
    model = load(result.run_dir).model
    samples = model.sample(800, generator=torch.Generator().manual_seed(0))  # ancestral, T steps
    data = build_data("moons", seed=0, val_fraction=0.1, test_fraction=0.2)
    train = torch.stack([data.train[i][0] for i in range(len(data.train))])
    test = torch.stack([data.test[i][0] for i in range(len(data.test))])
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T)).sample((800,))
    ed_model, ed_gauss = energy_distance(samples, test), energy_distance(gauss, test)
    assert ed_model < 0.5 * ed_gauss, (ed_model, ed_gauss)
