"""Denoising diffusion (DDPM), with DDIM sampling and classifier-free guidance.

Problem: sampling a complex distribution in one step is hard, but undoing a small amount of
Gaussian noise is easy.
Idea: a fixed forward process adds noise over T steps, q(x_t | x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I)
in closed form, and a network eps_θ(x_t, t) learns to predict the added noise with a plain
mean-squared error; sampling runs the reverse chain from pure noise (Ho, Jain & Abbeel 2020).
DDIM runs a deterministic, non-Markovian reverse process on a subsequence of the steps, so 50
steps replace 1,000 with the same trained network (Song, Meng & Ermon 2021). Dropping the
label during training makes one network both conditional and unconditional, and sampling with
eps = (1 + w) eps(x, y) - w eps(x) trades diversity for class fidelity (classifier-free
guidance, Ho & Salimans 2022).

The score-based view: predicting the noise is denoising score matching (Vincent 2011). The
minimiser of E||eps_θ(x_t, t) - eps||² is eps* = -√(1-ᾱ_t) ∇ log q_t(x_t), so
`score(x_t, t) = -eps_θ / √(1-ᾱ_t)` estimates the score of the noised data distribution, and
the DDPM sampler is a discretised reverse-time SDE driven by that score (Song et al. 2021,
"Score-Based Generative Modeling through SDEs"). Tests check this identity in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.generative import GenerativeModel
from deepstrata.models.unet import UNet, timestep_embedding
from deepstrata.registry import register_model

Schedule = Literal["linear", "cosine"]


def noise_schedule(kind: Schedule, timesteps: int) -> torch.Tensor:
    """β_1..β_T (float64). linear: Ho et al. 2020 (1e-4..0.02 at T=1000, rescaled for other T);
    cosine: ᾱ_t = cos²(((t/T) + s)/(1 + s) · π/2), s = 0.008 (Nichol & Dhariwal 2021). β is capped at 0.999."""
    if kind == "linear":
        scale = 1000.0 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64).clamp(max=0.999)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {kind!r}; choose linear or cosine")


class MLPDenoiser(nn.Module):
    """eps_θ for vector data (e.g. 2-D points): [x, emb(t) (+ emb(y))] -> MLP -> noise estimate."""

    def __init__(self, *, dim: int, hidden: int = 128, layers: int = 3, num_classes: int = 0):
        super().__init__()
        self.emb_dim, self.num_classes = 64, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.class_emb = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.inp = nn.Linear(dim, hidden)
        self.body = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim))
        if self.class_emb is not None:
            emb = emb + self.class_emb(y if y is not None else torch.full_like(t, self.num_classes))
        h = self.inp(x) + emb
        for layer in self.body:
            h = h + layer(F.silu(h))
        return self.out(F.silu(h))


class DDPM(GenerativeModel):
    """A noise-predicting denoiser plus the fixed noise schedule; images are mapped to [-1, 1]."""

    sample_options = frozenset({"steps", "guidance"})

    def __init__(
        self,
        *,
        data_shape: Sequence[int],
        timesteps: int = 1000,
        schedule: Schedule = "linear",
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        hidden: int = 128,
        num_classes: int = 0,
        p_uncond: float = 0.1,
    ):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.timesteps, self.num_classes, self.p_uncond = timesteps, num_classes, p_uncond
        self.image = len(self.data_shape) == 3
        if self.image:
            self.denoiser: nn.Module = UNet(in_channels=self.data_shape[0], base_channels=base_channels, channel_mults=channel_mults, num_classes=num_classes)
        else:
            self.denoiser = MLPDenoiser(dim=self.num_dims, hidden=hidden, num_classes=num_classes)
        betas = noise_schedule(schedule, timesteps)
        abar = torch.cumprod(1 - betas, dim=0)
        # Non-persistent: rebuilt from (schedule, timesteps), never stored in the weights file.
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)

    # ------------------------------------------------------------ the forward process
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1 if self.image else x

    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp(0, 1) if self.image else x

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) eps: a draw of q(x_t | x_0) in closed form. t: (N,) in 0..T-1."""
        abar = self.alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps_θ(x_t, t, y): the predicted noise, same shape as x. t defaults to step 0; y None = no label."""
        self.check_data("DDPM.denoiser", x)
        if t is None:
            t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        y = self.check_labels("DDPM.denoiser", y, x.shape[0], required=False)
        return self.denoiser(x, t, y)

    def score(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """∇ log q_t(x_t) estimated from the noise prediction: -eps_θ / √(1-ᾱ_t)."""
        return score_from_eps(self(x_t, t, y), self.alphas_cumprod[t].view(-1, *([1] * (x_t.dim() - 1))))

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Ho et al.'s simple loss: E_t,eps ||eps - eps_θ(√ᾱ_t x_0 + √(1-ᾱ_t) eps, t)||², per dimension."""
        x0 = self.to_model_space(x)
        n = x0.shape[0]
        t = torch.randint(0, self.timesteps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        labels = self.check_labels("DDPM.objective", y, n)
        if labels is not None and self.p_uncond > 0:  # label dropout: train the unconditional model too
            drop = torch.rand(n, device=x0.device) < self.p_uncond
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        mse = (self.denoiser(self.q_sample(x0, t, noise), t, labels) - noise).pow(2).mean()
        return {"loss": mse, "mse": mse.detach()}

    # ------------------------------------------------------------ the reverse process
    def _eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float) -> torch.Tensor:
        if y is None or guidance == 0:
            return self.denoiser(x, t, y)
        both = self.denoiser(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, self.num_classes)]))
        cond, uncond = both.chunk(2)
        return (1 + guidance) * cond - guidance * uncond  # classifier-free guidance

    def _predict_x0(self, x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        return x0.clamp(-1, 1) if self.image else x0  # images live in [-1, 1]

    @torch.no_grad()
    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        """steps None or T: ancestral DDPM sampling; fewer steps: deterministic DDIM (eta = 0).
        guidance w (classifier-free, conditional models only): eps = (1 + w) eps(x, y) - w eps(x)."""
        y = self.check_labels("DDPM.sample", y, n)
        device = self.alphas_cumprod.device
        steps = self.timesteps if steps is None else steps
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"DDPM.sample: steps must be in 1..{self.timesteps}, got {steps}")
        w = float(guidance or 0.0)
        x = torch.randn(n, *self.data_shape, generator=generator).to(device)
        if steps == self.timesteps:
            for i in reversed(range(self.timesteps)):
                t = torch.full((n,), i, dtype=torch.long, device=device)
                abar, beta = self.alphas_cumprod[i], self.betas[i]
                abar_prev = self.alphas_cumprod[i - 1] if i > 0 else torch.tensor(1.0, device=device)
                x0 = self._predict_x0(x, self._eps(x, t, y, w), abar)
                # Posterior q(x_{t-1} | x_t, x_0): mean from x0 and x_t, variance β̃_t.
                mean = (abar_prev.sqrt() * beta / (1 - abar)) * x0 + ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)) * x
                if i > 0:
                    var = beta * (1 - abar_prev) / (1 - abar)
                    x = mean + var.sqrt() * torch.randn(x.shape, generator=generator).to(device)
                else:
                    x = mean
        else:
            seq = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
            for k, i in enumerate(seq):
                t = torch.full((n,), i, dtype=torch.long, device=device)
                abar = self.alphas_cumprod[i]
                abar_prev = self.alphas_cumprod[seq[k + 1]] if k + 1 < len(seq) else torch.tensor(1.0, device=device)
                eps = self._eps(x, t, y, w)
                x0 = self._predict_x0(x, eps, abar)
                eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()  # consistent with the clipped x0
                x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
        return self.from_model_space(x)


def score_from_eps(eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """The score ∇_x log q_t(x) implied by a noise prediction: -eps / √(1 - ᾱ_t)."""
    return -eps / (1 - abar).sqrt()


@register_model("ddpm", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "timesteps": 20, "base_channels": 8, "channel_mults": [1, 2]}})
def ddpm(
    *,
    input_shape: list[int],
    timesteps: int = 1000,
    schedule: Schedule = "linear",
    base_channels: int = 32,
    channel_mults: list[int] = [1, 2, 2],  # noqa: B006
    hidden: int = 128,
) -> DDPM:
    """DDPM: U-Net (images) or MLP (vectors) noise predictor; DDPM or DDIM sampling."""
    return DDPM(data_shape=input_shape, timesteps=timesteps, schedule=schedule, base_channels=base_channels, channel_mults=tuple(channel_mults), hidden=hidden)


@register_model(
    "conditional_ddpm",
    example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "num_classes": 3, "timesteps": 20, "base_channels": 8, "channel_mults": [1, 2]}},
)
def conditional_ddpm(
    *,
    input_shape: list[int],
    num_classes: int,
    timesteps: int = 1000,
    schedule: Schedule = "linear",
    base_channels: int = 32,
    channel_mults: list[int] = [1, 2, 2],  # noqa: B006
    hidden: int = 128,
    p_uncond: float = 0.1,
) -> DDPM:
    """Class-conditional DDPM trained with label dropout, for classifier-free guidance."""
    return DDPM(
        data_shape=input_shape, timesteps=timesteps, schedule=schedule, base_channels=base_channels,
        channel_mults=tuple(channel_mults), hidden=hidden, num_classes=num_classes, p_uncond=p_uncond,
    )  # fmt: skip
