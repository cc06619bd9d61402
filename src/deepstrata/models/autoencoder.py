"""Autoencoders (dense and convolutional, optionally denoising) and reconstruction-error anomaly scores.

Problem: labels are scarce, but the structure of the data can still be learned, and an input
unlike the training data should be detectable without examples of anomalies.
Idea: squeeze the input through a low-dimensional code and train the network to reconstruct
it; the code keeps what matters (Hinton & Salakhutdinov 2006). Corrupting the input with noise
and asking for the clean input (a denoising autoencoder, Vincent et al. 2008) forces it to
learn the data's structure rather than the identity. Inputs far from the training data are
reconstructed badly, so the reconstruction error is an anomaly score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.models.generative import GenerativeModel
from deepstrata.registry import register_model


class Autoencoder(GenerativeModel):
    """encode -> code (N, latent_dim) -> decode -> reconstruction in [0, 1], same shape as x."""

    def __init__(self, *, data_shape: Sequence[int], kind: Literal["dense", "conv"] = "dense", latent_dim: int = 16, hidden: int = 128, noise_std: float = 0.0):
        super().__init__()
        self.data_shape, self.kind, self.latent_dim, self.noise_std = tuple(data_shape), kind, latent_dim, noise_std
        d = self.num_dims
        if kind == "dense":
            self.encoder: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim))
            self.decoder: nn.Module = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Unflatten(1, self.data_shape))
        elif kind == "conv":
            if len(self.data_shape) != 3 or self.data_shape[1] % 4 or self.data_shape[2] % 4:
                raise ValueError(f"a conv autoencoder needs (C, H, W) images with H, W divisible by 4, got {self.data_shape}")
            c, h, w = self.data_shape
            small = (2 * hidden // 4, h // 4, w // 4)
            self.encoder = nn.Sequential(
                nn.Conv2d(c, hidden // 4, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(hidden // 4, small[0], 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(small[0] * small[1] * small[2], latent_dim),
            )  # fmt: skip
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, small[0] * small[1] * small[2]), nn.ReLU(), nn.Unflatten(1, small),
                nn.ConvTranspose2d(small[0], hidden // 4, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(hidden // 4, c, 4, stride=2, padding=1),
            )  # fmt: skip
        else:
            raise ValueError(f"Autoencoder kind must be 'dense' or 'conv', got {kind!r}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_data(f"Autoencoder({self.kind}).encoder", x)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *data_shape) -> reconstruction (N, *data_shape) in [0, 1]."""
        return torch.sigmoid(self.decoder(self.encode(x)))

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Mean squared reconstruction error; the denoising variant reconstructs x from x + noise."""
        noisy = x + self.noise_std * torch.randn_like(x) if self.noise_std > 0 and self.training else x
        mse = (self(noisy) - x).pow(2).mean()
        return {"loss": mse, "mse": mse.detach()}

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction error per example, (N,): high for inputs unlike the training data."""
        return (self(x) - x).pow(2).flatten(1).mean(1)

    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        raise UserError("an autoencoder has no prior over its codes to sample from; train a vae to generate new examples")


@register_model("autoencoder", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "kind": "conv", "latent_dim": 4, "hidden": 16}})
def autoencoder(*, input_shape: list[int], kind: Literal["dense", "conv"] = "dense", latent_dim: int = 16, hidden: int = 128, noise_std: float = 0.0) -> Autoencoder:
    """Autoencoder (dense or conv; denoising when noise_std > 0); anomaly score = reconstruction error."""
    if noise_std < 0:
        raise UserError(f"autoencoder noise_std={noise_std} must be >= 0")
    return Autoencoder(data_shape=input_shape, kind=kind, latent_dim=latent_dim, hidden=hidden, noise_std=noise_std)
