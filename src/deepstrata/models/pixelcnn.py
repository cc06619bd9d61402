"""PixelCNN: an autoregressive image model built from masked convolutions.

Problem: the joint distribution of an image's pixels has no tractable form, and a recurrent
model that reads pixels one by one is slow to train.
Idea: factor p(x) = Π_i p(x_i | x_<i) in raster order and compute every conditional in one
convolutional pass by masking kernels so that a pixel never sees itself or later pixels: the
first layer uses a type-A mask (centre excluded), later layers a type-B mask (centre included,
since their centre already summarises only earlier pixels). Training is one parallel pass;
sampling is sequential, one pixel at a time. Binary pixels get one Bernoulli logit each.
(van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks".)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.generative import GenerativeModel, bits_per_dim, dynamic_binarize
from deepstrata.registry import register_model


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel sees only pixels before the centre in raster order (A), or also the centre (B)."""

    def __init__(self, mask_type: Literal["A", "B"], in_channels: int, out_channels: int, kernel_size: int):
        if mask_type not in ("A", "B"):
            raise ValueError(f"MaskedConv2d mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"MaskedConv2d needs an odd kernel_size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        k = kernel_size
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (mask_type == "B") :] = 0  # the centre row: centre (A) and everything right of it
        mask[k // 2 + 1 :, :] = 0  # every row below the centre
        self.register_buffer("mask", mask.view(1, 1, k, k), persistent=False)
        self.mask_type = mask_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualMaskedBlock(nn.Module):
    """1x1 -> masked 3x3 (type B) -> 1x1 with a skip, as in the paper's PixelCNN residual block."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels // 2, 1),
            nn.ReLU(), MaskedConv2d("B", channels // 2, channels // 2, 3),
            nn.ReLU(), nn.Conv2d(channels // 2, channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PixelCNN(GenerativeModel):
    """7x7 type-A masked conv, residual type-B blocks, 1x1 head -> one Bernoulli logit per pixel."""

    objective_units = "nats"  # the loss is a negative log-likelihood (or its bound) per example

    def __init__(self, *, data_shape: Sequence[int], channels: int = 64, num_blocks: int = 7):
        super().__init__()
        self.data_shape = tuple(data_shape)
        if len(self.data_shape) != 3 or self.data_shape[0] != 1:
            raise ValueError(f"PixelCNN models one-channel binary images (1, H, W), got data shape {self.data_shape}")
        self.stem = MaskedConv2d("A", 1, channels, 7)
        self.blocks = nn.Sequential(*(ResidualMaskedBlock(channels) for _ in range(num_blocks)))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) binary -> (N, 1, H, W) logits of p(x_i = 1 | x_<i)."""
        self.check_data("PixelCNN.stem", x)
        return self.head(self.blocks(self.stem(x)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per example (N,), nats, for binary x."""
        return -F.binary_cross_entropy_with_logits(self(x), x, reduction="none").flatten(1).sum(1)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(dynamic_binarize(x))
        return {"loss": nll.mean(), "bits_per_dim": bits_per_dim(nll.mean().detach(), self.num_dims)}

    @torch.no_grad()
    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        """Pixel by pixel in raster order: H*W forward passes."""
        device = next(self.parameters()).device
        _, h, w = self.data_shape
        x = torch.zeros(n, *self.data_shape, device=device)
        for i in range(h):
            for j in range(w):
                p = torch.sigmoid(self(x)[:, 0, i, j])
                x[:, 0, i, j] = torch.bernoulli(p.cpu(), generator=generator).to(device)
        return x


@register_model("pixelcnn", example={"input_shape": [1, 8, 8], "kwargs": {"input_shape": [1, 8, 8], "channels": 8, "num_blocks": 1}})
def pixelcnn(*, input_shape: list[int], channels: int = 64, num_blocks: int = 7) -> PixelCNN:
    """PixelCNN for binary images: type-A then type-B masked convolutions, exact NLL."""
    return PixelCNN(data_shape=input_shape, channels=channels, num_blocks=num_blocks)
