"""RealNVP: a normalizing flow with affine coupling layers, exact likelihood and fast sampling.

Problem: an invertible network gives an exact density by the change of variables,
log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|, but a general Jacobian determinant costs O(D³).
Idea: an affine coupling layer keeps the masked half of the input and scales and shifts the
other half by functions of the kept half, y = m⊙x + (1-m)⊙(x⊙exp(s(m⊙x)) + t(m⊙x)); its
Jacobian is triangular, so log |det| = Σ (1-m)⊙s, and the inverse costs one pass. Alternating
masks (checkerboard for images, even/odd for vectors) let every dimension change, and ActNorm
(a per-dimension affine layer initialised from the first batch) keeps activations
standardised. Discrete images are dequantised with uniform noise and mapped through a logit.
For images, `coupling="conv"` computes s and t with a small CNN, which shares its weights over
positions (far fewer parameters than an MLP over all pixels, so it overfits less and learns
local structure): the first half of the couplings use checkerboard masks at full resolution,
the second half work on the squeezed image (each 2x2 block becomes 4 channels, a permutation
with log |det| = 0) and mask half of the channels, as in the paper's multi-scale architecture
without its factoring-out of dimensions.
(Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP"; ActNorm from
Kingma & Dhariwal 2018, Glow.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.generative import GenerativeModel, bits_per_dim
from deepstrata.registry import register_model


class ActNorm(nn.Module):
    """y = (x - bias) * exp(-log_scale) per dimension; the first training batch sets zero mean, unit variance."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            with torch.no_grad():  # data-dependent initialisation (Glow)
                self.bias.copy_(x.mean(0))
                self.log_scale.copy_(x.std(0).clamp_min(1e-3).log() if x.shape[0] > 1 else torch.zeros_like(self.log_scale))
                self.initialized.fill_(1)
        y = (x - self.bias) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(self.log_scale) + self.bias


class AffineCoupling(nn.Module):
    """Keeps x where mask == 1; scales and shifts the rest by s, t computed from the kept part."""

    def __init__(self, mask: torch.Tensor, hidden: int, layers: int):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        sizes = [dim, *([hidden] * layers)]
        body: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            body += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*body, nn.Linear(sizes[-1], 2 * dim))
        nn.init.zeros_(self.net[-1].weight)  # start as the identity map
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(dim))  # s = scale * tanh(raw): bounded, learnable range

    def _st(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(kept).chunk(2, dim=1)
        free = 1.0 - self.mask
        return self.scale * torch.tanh(raw_s) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._st(x * self.mask)
        return x * torch.exp(s) + t, s.sum(dim=1)  # kept dims: s = t = 0, so they pass unchanged

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._st(y * self.mask)  # the kept part of y equals the kept part of x
        return (y - t) * torch.exp(-s)


def checkerboard(h: int, w: int) -> torch.Tensor:
    """(h, w) tensor of 0/1 alternating along rows and columns, 0 at the top left."""
    return (torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)) % 2


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 block of a channel becomes 4 channels."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `squeeze`."""
    n, c4, h, w = x.shape
    c = c4 // 4
    return x.view(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)


class ConvAffineCoupling(nn.Module):
    """Affine coupling on images: s, t come from a CNN over the kept pixels (and the mask itself).

    Works on the flattened tensor like `AffineCoupling`: it views it as `data_shape`, squeezes
    it if asked, couples in that layout and flattens back. The CNN gets the mask as one more
    input channel, so it knows which positions carry information.
    """

    def __init__(self, data_shape: Sequence[int], mask: torch.Tensor, hidden: int, layers: int, squeezed: bool):
        super().__init__()
        self.data_shape, self.squeezed = tuple(data_shape), squeezed
        self.register_buffer("mask", mask.float().clone())  # own copy (safetensors refuses shared memory); in the working layout, (C', H', W')
        c = mask.shape[0]
        body: list[nn.Module] = [nn.Conv2d(c + 1, hidden, 3, padding=1), nn.ReLU()]
        for _ in range(layers - 1):
            body += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*body, nn.Conv2d(hidden, 2 * c, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)  # start as the identity map
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(c, 1, 1))

    def _to_work(self, h: torch.Tensor) -> torch.Tensor:
        x = h.view(-1, *self.data_shape)
        return squeeze(x) if self.squeezed else x

    def _to_flat(self, x: torch.Tensor) -> torch.Tensor:
        return (unsqueeze(x) if self.squeezed else x).flatten(1)

    def _st(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        plane = self.mask[:1].expand(kept.shape[0], 1, *kept.shape[2:])
        raw_s, t = self.net(torch.cat([kept, plane], dim=1)).chunk(2, dim=1)
        free = 1.0 - self.mask
        return self.scale * torch.tanh(raw_s) * free, t * free

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._to_work(h)
        s, t = self._st(x * self.mask)
        return self._to_flat(x * torch.exp(s) + t), s.flatten(1).sum(dim=1)

    def inverse(self, h: torch.Tensor) -> torch.Tensor:
        y = self._to_work(h)
        s, t = self._st(y * self.mask)
        return self._to_flat((y - t) * torch.exp(-s))


def conv_coupling_plan(data_shape: Sequence[int], count: int, squeeze_first: bool = False) -> list[tuple[torch.Tensor, bool]]:
    """(mask, squeezed) per coupling: alternating checkerboards, then alternating channel halves of the squeezed image.

    The checkerboards work at full size, or with `squeeze_first` on the squeezed image too (a
    checkerboard over its 2x2 blocks, every channel of a block kept or free together), which
    makes every coupling's CNN run on a quarter of the positions.
    """
    c, h, w = data_shape
    if h % 2 or w % 2:
        raise ValueError(f"RealNVP coupling='conv' squeezes 2x2 blocks, so height and width must be even, got data shape {tuple(data_shape)}; pad or crop the images to even sizes, or use coupling='mlp'")
    bh, bw, bc = (h // 2, w // 2, 4 * c) if squeeze_first else (h, w, c)
    board = checkerboard(bh, bw).expand(bc, bh, bw)
    half = torch.zeros(4 * c, h // 2, w // 2)
    half[: 2 * c] = 1  # the first half of the squeezed channels (one input channel: the top row of every 2x2 block)
    first = (count + 1) // 2
    plan = [(board if i % 2 == 0 else 1 - board, squeeze_first) for i in range(first)]
    plan += [(half if i % 2 == 0 else 1 - half, True) for i in range(count - first)]
    return plan


def coupling_masks(data_shape: Sequence[int], count: int) -> list[torch.Tensor]:
    """Flattened alternating masks: checkerboard for (C, H, W) images, even/odd dims for vectors."""
    if len(data_shape) == 3:
        c, h, w = data_shape
        base = checkerboard(h, w).expand(c, h, w).flatten()
    else:
        base = torch.arange(math.prod(data_shape)) % 2
    return [base if i % 2 == 0 else 1 - base for i in range(count)]


class RealNVP(GenerativeModel):
    """x -> [logit] -> (ActNorm -> AffineCoupling) x K -> z ~ N(0, I), on flattened inputs."""

    objective_units = "nats"  # the loss is a negative log-likelihood (or its bound) per example

    def __init__(
        self,
        *,
        data_shape: Sequence[int],
        num_couplings: int = 8,
        hidden: int = 256,
        layers: int = 2,
        num_levels: int = 0,
        alpha: float = 0.05,
        coupling: Literal["mlp", "conv"] = "mlp",
        squeeze_first: bool = False,
    ):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.num_levels = num_levels  # > 0: data are k / (num_levels - 1), dequantised and logit-mapped
        self.alpha = alpha
        d = self.num_dims
        self.norms = nn.ModuleList(ActNorm(d) for _ in range(num_couplings))
        if coupling == "mlp":
            self.couplings = nn.ModuleList(AffineCoupling(m, hidden, layers) for m in coupling_masks(self.data_shape, num_couplings))
        elif coupling == "conv":
            if len(self.data_shape) != 3:
                raise ValueError(f"RealNVP coupling='conv' needs (C, H, W) images, got data shape {self.data_shape}; use coupling='mlp' for vectors")
            plan = conv_coupling_plan(self.data_shape, num_couplings, squeeze_first)
            self.couplings = nn.ModuleList(ConvAffineCoupling(self.data_shape, m, hidden, layers, sq) for m, sq in plan)
        else:
            raise ValueError(f"RealNVP coupling must be 'mlp' or 'conv', got {coupling!r}")
        if squeeze_first and coupling != "conv":
            raise ValueError("RealNVP squeeze_first needs coupling='conv'")

    # ------------------------------------------------------------ x <-> z
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, *data_shape) -> z (N, D) and log |det ∂z/∂x| (N,). Continuous x; see `log_prob` for images."""
        self.check_data("RealNVP", x)
        h = x.flatten(1)
        logdet = h.new_zeros(h.shape[0])
        if self.num_levels:
            h, ld = self._logit(h)
            logdet = logdet + ld
        for norm, coupling in zip(self.norms, self.couplings):
            h, ld1 = norm(h)
            h, ld2 = coupling(h)
            logdet = logdet + ld1 + ld2
        return h, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) -> x (N, *data_shape): the exact inverse of `forward`."""
        h = z
        for norm, coupling in zip(reversed(self.norms), reversed(self.couplings)):
            h = norm.inverse(coupling.inverse(h))
        if self.num_levels:
            h = (torch.sigmoid(h) - self.alpha) / (1 - 2 * self.alpha)
        return h.view(-1, *self.data_shape)

    def _logit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u in (0, 1) -> logit(alpha + (1 - 2 alpha) u), with its log |det| (N,)."""
        p = self.alpha + (1 - 2 * self.alpha) * u
        logdet = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).sum(dim=1)
        return torch.log(p) - torch.log1p(-p), logdet

    # ------------------------------------------------------------ densities
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per example (N,), in nats: exact for continuous x.

        With num_levels > 0 the input is discrete (k / (num_levels - 1)); it is dequantised,
        u = (k + noise) / num_levels, and the value is a variational lower bound on the
        discrete log-probability: log P(k) >= E[log p(u)] - D log num_levels.
        """
        if self.num_levels:
            k = torch.round(x * (self.num_levels - 1))
            u = (k + torch.rand_like(x)) / self.num_levels
            z, logdet = self(u)
            correction = self.num_dims * math.log(self.num_levels)
        else:
            z, logdet = self(x)
            correction = 0.0
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=1)
        return log_pz + logdet - correction

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(x)
        return {"loss": nll.mean(), "bits_per_dim": bits_per_dim(nll.mean().detach(), self.num_dims)}

    @torch.no_grad()
    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        """x = f⁻¹(z), z ~ N(0, I); images are clamped to [0, 1]."""
        device = next(self.parameters()).device
        x = self.inverse(torch.randn(n, self.num_dims, generator=generator).to(device))
        return x.clamp(0.0, 1.0) if self.num_levels else x


@register_model("realnvp", example={"input_shape": [2], "kwargs": {"input_shape": [2], "num_couplings": 4, "hidden": 16}})
def realnvp(
    *,
    input_shape: list[int],
    num_couplings: int = 8,
    hidden: int = 256,
    layers: int = 2,
    num_levels: int = 0,
    alpha: float = 0.05,
    coupling: Literal["mlp", "conv"] = "mlp",
    squeeze_first: bool = False,
) -> RealNVP:
    """RealNVP flow: ActNorm + affine couplings (MLP, or CNN for images) with alternating masks; exact log-likelihood."""
    return RealNVP(data_shape=input_shape, num_couplings=num_couplings, hidden=hidden, layers=layers, num_levels=num_levels, alpha=alpha, coupling=coupling, squeeze_first=squeeze_first)
