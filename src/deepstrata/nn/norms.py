"""Normalisation layers: LayerNorm and RMSNorm for tokens, batch/group/layer norm for feature maps.

Problem: activations in a deep residual stack drift in scale from layer to layer, which makes
optimisation unstable. Idea: LayerNorm re-centres and re-scales each token's feature vector
(Ba et al. 2016, "Layer Normalization"); RMSNorm drops the re-centring and divides by the
root mean square only, which is cheaper and works as well (Zhang & Sennrich 2019, "Root Mean
Square Layer Normalization"). LayerNorm is torch's own; RMSNorm is written out below and
tested equal to `torch.nn.RMSNorm`. Convolutional maps (N, C, H, W) are normalised per
channel over the batch (Ioffe & Szegedy 2015, "Batch Normalization") or, independent of the
batch size, over groups of channels of each example (Wu & He 2018, "Group Normalization").
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NormKind = Literal["layer", "rms"]
ConvNorm = Literal["batch", "group", "layer", "none"]


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, over the last dimension."""

    def __init__(self, dim: int, *, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"RMSNorm expected (..., {self.dim}) input, got {tuple(x.shape)}")
        y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


def make_norm(kind: NormKind, dim: int, *, eps: float = 1e-5) -> nn.Module:
    """LayerNorm ("layer", torch's) or RMSNorm ("rms") over the last dimension of size `dim`."""
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rms":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; choose 'layer' or 'rms'")


def conv_norm(kind: ConvNorm, channels: int) -> nn.Module:
    """A normalisation layer over `channels` feature maps (N, C, H, W); "none" is the identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = LayerNorm over (C, H, W)
    return nn.Identity()
