"""A small U-Net denoiser for diffusion models: image in, same-shape noise estimate out.

Problem: a denoiser must predict a per-pixel quantity that depends on both fine detail and the
whole image, at every noise level and (for conditional models) for every class.
Idea: an encoder halves the resolution level by level, a decoder doubles it back, and skip
connections hand each decoder level the encoder's features at the same resolution; residual
blocks receive a sinusoidal embedding of the step t (plus a learned class embedding) as a
per-channel bias. (Ronneberger et al. 2015 for the U-Net; Ho et al. 2020 for its use in DDPM.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps (Vaswani et al. 2017): (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the step/class embedding added between, plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(in_ch), in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(out_ch), out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """eps_theta(x_t, t, y): (N, C, H, W), (N,) steps, optional (N,) labels -> (N, C, H, W).

    Labels equal to `num_classes` mean "no label" (the unconditional model of classifier-free
    guidance). H and W must be divisible by 2 ** (len(channel_mults) - 1).
    """

    def __init__(self, *, in_channels: int = 1, base_channels: int = 32, channel_mults: Sequence[int] = (1, 2, 2), num_classes: int = 0):
        super().__init__()
        chans = [base_channels * m for m in channel_mults]
        emb_dim = 4 * base_channels
        self.base_channels, self.num_levels, self.num_classes = base_channels, len(chans), num_classes
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = base_channels
        for i, ch in enumerate(chans):
            self.down.append(ResBlock(prev, ch, emb_dim))
            self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
            prev = ch
        self.mid = ResBlock(prev, prev, emb_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chans))):
            incoming = chans[i + 1] if i < len(chans) - 1 else chans[-1]
            self.up.append(ResBlock(incoming + chans[i], chans[i], emb_dim))
            self.upsample.append(nn.Conv2d(chans[i], chans[i], 3, padding=1) if i > 0 else nn.Identity())
        self.out = nn.Sequential(nn.GroupNorm(_groups(chans[0]), chans[0]), nn.SiLU(), nn.Conv2d(chans[0], in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        factor = 2 ** (self.num_levels - 1)
        if x.dim() != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"UNet expected (N, C, H, W) input with H, W divisible by {factor}, got {tuple(x.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.class_emb is not None:
            labels = y if y is not None else torch.full_like(t, self.num_classes)
            emb = emb + self.class_emb(labels)
        h = self.stem(x)
        skips = []
        for block, down in zip(self.down, self.downsample):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for block, up in zip(self.up, self.upsample):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)
