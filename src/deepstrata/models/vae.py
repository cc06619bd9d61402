"""Variational autoencoder (VAE) and conditional VAE.

Problem: the likelihood p(x) = ∫ p(x|z) p(z) dz of a latent-variable model is intractable, and
sampling z inside the model blocks gradients to the encoder.
Idea: an encoder q(z|x) = N(mu(x), diag sigma²(x)) gives the evidence lower bound
ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), whose KL part is analytic; writing
z = mu + sigma * eps with eps ~ N(0, I) (the reparameterisation, a pathwise gradient) lets
gradients flow through the sample. The conditional VAE feeds a one-hot label to both the
encoder and the decoder, so p(x|z, y) generates a chosen class.
(Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Sohn et al. 2015 for the CVAE.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.generative import GenerativeModel, dynamic_binarize
from deepstrata.registry import register_model

Likelihood = Literal["bernoulli", "gaussian"]


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example: 0.5 Σ (mu² + σ² - 1 - log σ²). (N, D) -> (N,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(GenerativeModel):
    """MLP encoder and decoder; Bernoulli (binary images) or Gaussian (real data) likelihood."""

    objective_units = "nats"  # the loss is a negative log-likelihood (or its bound) per example

    def __init__(
        self,
        *,
        data_shape: Sequence[int],
        latent_dim: int = 32,
        hidden: Sequence[int] = (512, 256),
        likelihood: Likelihood = "bernoulli",
        num_classes: int = 0,
    ):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.num_classes = num_classes
        d, c = self.num_dims, num_classes
        self.encoder = _mlp([d + c, *hidden, 2 * latent_dim])  # -> (mu, logvar)
        self.decoder = _mlp([latent_dim + c, *reversed(hidden), d])  # -> logits or means
        # Gaussian likelihood: one learned log standard deviation per dimension.
        self.log_sigma = nn.Parameter(torch.zeros(d)) if likelihood == "gaussian" else None

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        # No label -> an all-zero one-hot vector (used only by `forward` called without y).
        onehot = F.one_hot(y, self.num_classes).to(h.dtype) if y is not None else h.new_zeros(h.shape[0], self.num_classes)
        return torch.cat([h, onehot], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, *, require_labels: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, *data_shape) -> mu, logvar, each (N, latent_dim)."""
        self.check_data("VAE.encoder", x)
        y = self.check_labels("VAE.encoder", y, x.shape[0], required=require_labels)
        mu, logvar = self.encoder(self._with_label(x.flatten(1), y)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None, *, require_labels: bool = True) -> torch.Tensor:
        """(N, latent_dim) -> decoder output (logits for Bernoulli, means for Gaussian), (N, *data_shape)."""
        y = self.check_labels("VAE.decoder", y, z.shape[0], required=require_labels)
        return self.decoder(self._with_label(z, y)).view(-1, *self.data_shape)

    def mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z]: probabilities for Bernoulli, means for Gaussian."""
        out = self.decode(z, y)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps: a sample of q(z|x) that is differentiable in mu and sigma."""
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reconstruction (decoder output) with z sampled in training and z = mu in eval mode.

        A conditional model called without labels gets the all-zero "no label" input.
        """
        mu, logvar = self.encode(x, y, require_labels=False)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return {"reconstruction": self.decode(z, y, require_labels=False), "mu": mu, "logvar": logvar}

    def reconstruction_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per example in nats, (N,)."""
        if self.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        log_sigma = self.log_sigma.view(1, *self.data_shape)
        nll = 0.5 * ((x - out) / log_sigma.exp()).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
        return nll.flatten(1).sum(1)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per example (nats) = reconstruction NLL + KL, each averaged over the batch."""
        if self.likelihood == "bernoulli":
            x = dynamic_binarize(x)
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)  # one sample: an unbiased estimate of the ELBO
        recon = self.reconstruction_nll(self.decode(z, y), x)
        kl = gaussian_kl(mu, logvar)
        nelbo = recon + kl
        return {"loss": nelbo.mean(), "recon": recon.mean(), "kl": kl.mean()}

    @torch.no_grad()
    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        """Decode z ~ N(0, I): the mean image E[x|z] (probabilities for Bernoulli)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.mean(z, self.check_labels("VAE.sample", y, n))


@register_model("vae", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "latent_dim": 4, "hidden": [16]}})
def vae(
    *,
    input_shape: list[int],
    latent_dim: int = 32,
    hidden: list[int] = [512, 256],  # noqa: B006 - copied, never mutated
    likelihood: Likelihood = "bernoulli",
) -> VAE:
    """Variational autoencoder (MLP): reparameterised Gaussian latent, negative ELBO = recon + KL."""
    return VAE(data_shape=input_shape, latent_dim=latent_dim, hidden=tuple(hidden), likelihood=likelihood)


@register_model(
    "cvae",
    example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "num_classes": 3, "latent_dim": 4, "hidden": [16]}},
)
def cvae(
    *,
    input_shape: list[int],
    num_classes: int,
    latent_dim: int = 32,
    hidden: list[int] = [512, 256],  # noqa: B006
    likelihood: Likelihood = "bernoulli",
) -> VAE:
    """Conditional VAE: the one-hot class enters encoder and decoder; sample(n, y=c) draws class c."""
    return VAE(data_shape=input_shape, latent_dim=latent_dim, hidden=tuple(hidden), likelihood=likelihood, num_classes=num_classes)
