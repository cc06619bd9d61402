"""DCGAN-style generative adversarial network, unconditional and class-conditional.

Problem: a generator can produce sharp samples without any likelihood, but then something
must tell it how far its samples are from the data.
Idea: a discriminator D learns to tell real from generated images while the generator G
learns to fool it, a two-player game whose equilibrium is G matching the data distribution
(Goodfellow et al. 2014). The generator minimises the non-saturating loss -log D(G(z)), which
keeps gradients alive when D wins early; strided convolutions with batch norm in G make the
game stable for images (DCGAN, Radford, Metz & Chintala 2016); one-sided label smoothing
(real target 0.9, Salimans et al. 2016) or spectral normalisation of D (Miyato et al. 2018)
are optional stabilisers. The conditional GAN feeds the label to both players (Mirza &
Osindero 2014): G gets a one-hot vector beside z; D gets one constant plane per class
(`conditioning="concat"`), or, with `conditioning="projection"` (Miyato & Koyama 2018), scores
its features phi(x) as w.phi(x) + embed(y).phi(x), so that every class's evidence is read from
the same features by an inner product, a much stronger signal of "is this the requested
class" than a constant input plane. `aux_classifier_weight` > 0 adds the AC-GAN auxiliary task
(Odena, Olah & Shlens 2017): a class head on D's features learns to classify real images and
the generator is also trained to make its samples classified as their requested class. The
paper also trains the head on generated images with their requested labels; with
`aux_on_fakes=False` it learns from real images only, so it cannot learn to accept a poor
sample as its class and keeps pressing G towards the real class boundaries.

Both players learn in one optimizer step: `objective` returns D's loss, whose gradient reaches
only D (fakes are detached), plus G's loss computed through a frozen D, whose gradient reaches
only G; one backward pass then gives each player exactly its own gradient (simultaneous
gradient descent, rather than the paper's alternating updates), so the GAN trains in the
standard Trainer with a single optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.generative import GenerativeModel
from deepstrata.registry import register_model

Conditioning = Literal["concat", "projection"]


class Generator(nn.Module):
    """z (+ one-hot y) -> linear -> (2w, H/4, W/4) -> 2 x [upsample conv, BN, ReLU] -> sigmoid image."""

    def __init__(self, data_shape: Sequence[int], latent_dim: int, width: int, num_classes: int):
        super().__init__()
        c, h, w = data_shape
        self.small = (2 * width, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(latent_dim + num_classes, 2 * width * (h // 4) * (w // 4)), nn.BatchNorm1d(2 * width * (h // 4) * (w // 4)), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.fc(z).view(-1, *self.small)))


class Discriminator(nn.Module):
    """image (+ one plane per class) -> 2 x [strided conv, LeakyReLU] -> features phi -> linear -> real/fake logit.

    With `projection_classes` > 0 the logit gains embed(y) . phi(x) (projection discriminator).
    """

    def __init__(self, data_shape: Sequence[int], width: int, in_planes: int, spectral_norm: bool, projection_classes: int = 0, aux_classes: int = 0):
        super().__init__()
        c, h, w = data_shape
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.features = nn.Sequential(
            sn(nn.Conv2d(c + in_planes, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )  # fmt: skip
        num_features = 2 * width * (h // 4) * (w // 4)
        self.out = sn(nn.Linear(num_features, 1))
        self.embed = sn(nn.Embedding(projection_classes, num_features)) if projection_classes else None
        self.aux = nn.Linear(num_features, aux_classes) if aux_classes else None  # AC-GAN class head

    def score(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logit (N,), features phi (N, F))."""
        phi = self.features(x)
        logit = self.out(phi).squeeze(1)
        if self.embed is not None and y is not None:
            logit = logit + (self.embed(y) * phi).sum(1)  # the projection term
        return logit, phi

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(x, y)[0]


class GAN(GenerativeModel):
    """Generator + discriminator; `forward(x)` is D's logit, `sample` runs G."""

    def __init__(
        self,
        *,
        data_shape: Sequence[int],
        latent_dim: int = 64,
        width: int = 64,
        num_classes: int = 0,
        label_smoothing: float = 0.0,
        spectral_norm: bool = False,
        conditioning: Conditioning = "concat",
        aux_classifier_weight: float = 0.0,
        aux_on_fakes: bool = True,
    ):
        super().__init__()
        self.data_shape = tuple(data_shape)
        if len(self.data_shape) != 3 or self.data_shape[1] % 4 or self.data_shape[2] % 4:
            raise ValueError(f"GAN needs (C, H, W) images with H and W divisible by 4, got data shape {self.data_shape}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"GAN label_smoothing must be in [0, 0.5), got {label_smoothing}")
        if conditioning not in ("concat", "projection"):
            raise ValueError(f"GAN conditioning must be 'concat' or 'projection', got {conditioning!r}")
        if aux_classifier_weight < 0 or (aux_classifier_weight and not num_classes):
            raise ValueError(f"GAN aux_classifier_weight must be >= 0 and needs a conditional GAN (num_classes > 0), got {aux_classifier_weight}")
        self.latent_dim, self.num_classes, self.label_smoothing = latent_dim, num_classes, label_smoothing
        self.conditioning, self.aux_classifier_weight, self.aux_on_fakes = conditioning, aux_classifier_weight, aux_on_fakes
        self.generator = Generator(self.data_shape, latent_dim, width, num_classes)
        projection = num_classes if conditioning == "projection" else 0
        aux = num_classes if aux_classifier_weight else 0
        self.discriminator = Discriminator(self.data_shape, width, num_classes - projection, spectral_norm, projection, aux)

    def _d_score(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logit and features; a projection D without a label gives the unconditional score w.phi(x)."""
        if self.conditional and self.conditioning == "concat":
            planes = F.one_hot(y, self.num_classes).to(x.dtype) if y is not None else x.new_zeros(x.shape[0], self.num_classes)
            x = torch.cat([x, planes[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.discriminator.score(x, y if self.conditional else None)

    def _d(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self._d_score(x, y)[0]

    def _aux_loss(self, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """AC-GAN: cross-entropy of D's class head on features phi against the labels y."""
        return F.cross_entropy(self.discriminator.aux(phi), y)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(N, latent_dim) noise (+ labels) -> (N, *data_shape) images in [0, 1]."""
        if self.conditional:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.generator(z)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's logit that x is real, (N,). Without labels a conditional D gets all-zero planes."""
        self.check_data("GAN.discriminator", x)
        return self._d(x, self.check_labels("GAN.discriminator", y, x.shape[0], required=False))

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """d_loss (D's gradient only) + g_loss (G's gradient only); both logged, their sum minimised."""
        self.check_data("GAN.discriminator", x)
        y = self.check_labels("GAN.objective", y, x.shape[0])
        z = torch.randn(x.shape[0], self.latent_dim, device=x.device)
        fake = self.generate(z, y)
        # One D pass over real and (detached) fake images: D has no batch norm, so this equals two passes.
        logits, phis = self._d_score(torch.cat([x, fake.detach()]), None if y is None else torch.cat([y, y]))
        (real_logit, fake_logit), (real_phi, fake_phi) = logits.chunk(2), phis.chunk(2)
        real_target = torch.full_like(real_logit, 1.0 - self.label_smoothing)  # one-sided smoothing
        d_loss = F.binary_cross_entropy_with_logits(real_logit, real_target) + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        if self.aux_classifier_weight:
            aux = self._aux_loss(real_phi, y) + (self._aux_loss(fake_phi, y) if self.aux_on_fakes else 0.0)
            d_loss = d_loss + self.aux_classifier_weight * aux
        # G's loss through a frozen D: the graph records D's weights as constants, so this term
        # sends gradients to G only. Non-saturating: maximise log D(G(z)).
        params = list(self.discriminator.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            g_logit, g_phi = self._d_score(fake, y)
        finally:
            for p in params:
                p.requires_grad_(True)
        g_loss = F.binary_cross_entropy_with_logits(g_logit, torch.ones_like(g_logit))
        if self.aux_classifier_weight:
            g_loss = g_loss + self.aux_classifier_weight * self._aux_loss(g_phi, y)
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": torch.sigmoid(real_logit).mean().detach(),  # D's mean belief that real is real
            "d_fake": torch.sigmoid(fake_logit).mean().detach(),  # ... and that fake is real
        }

    @torch.no_grad()
    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        y = self.check_labels("GAN.sample", y, n)
        device = next(self.parameters()).device
        return self.generate(torch.randn(n, self.latent_dim, generator=generator).to(device), y)


@register_model("gan", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "latent_dim": 8, "width": 8}})
def gan(*, input_shape: list[int], latent_dim: int = 64, width: int = 64, label_smoothing: float = 0.0, spectral_norm: bool = False) -> GAN:
    """DCGAN-style GAN: non-saturating loss; optional one-sided label smoothing or spectral norm."""
    return GAN(data_shape=input_shape, latent_dim=latent_dim, width=width, label_smoothing=label_smoothing, spectral_norm=spectral_norm)


@register_model("cgan", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "num_classes": 3, "latent_dim": 8, "width": 8, "spectral_norm": True}})
def cgan(
    *,
    input_shape: list[int],
    num_classes: int,
    latent_dim: int = 64,
    width: int = 64,
    label_smoothing: float = 0.0,
    spectral_norm: bool = False,
    conditioning: Conditioning = "concat",
    aux_classifier_weight: float = 0.0,
    aux_on_fakes: bool = True,
) -> GAN:
    """Conditional DCGAN (Mirza & Osindero 2014): label to G and D (concat or projection D; optional AC-GAN class head)."""
    return GAN(
        data_shape=input_shape, latent_dim=latent_dim, width=width, num_classes=num_classes, label_smoothing=label_smoothing,
        spectral_norm=spectral_norm, conditioning=conditioning, aux_classifier_weight=aux_classifier_weight,
        aux_on_fakes=aux_on_fakes,
    )  # fmt: skip
