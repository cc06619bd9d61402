"""Positional encodings: sinusoidal, learned and rotary (RoPE).

Problem: self-attention is permutation-equivariant, so without help a Transformer cannot tell
"a b" from "b a". Idea: inject position information, either by adding a fixed sinusoid of
geometrically spaced frequencies (Vaswani et al. 2017, "Attention Is All You Need"), a learned
vector per position (Devlin et al. 2019; Radford et al. 2018), or by rotating each query and
key by an angle proportional to its position so that their dot product depends only on the
relative offset (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position
Embedding").
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

PositionalKind = Literal["sinusoidal", "learned", "rope", "none"]


def _check_length(layer: str, length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(f"{layer} covers {max_len} positions, got a sequence reaching position {length}; raise max_len")


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[offset : offset + T], PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(...)."""

    def __init__(self, dim: int, *, max_len: int = 4096, base: float = 10000.0):
        super().__init__()
        self.dim, self.max_len = dim, max_len
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(base) / dim))  # (ceil(D/2),)
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * freq)
        pe[:, 1::2] = torch.cos(position * freq[: dim // 2])
        self.register_buffer("pe", pe, persistent=False)  # a function of the shape: not a weight

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """x: (N, T, D) -> (N, T, D)."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"SinusoidalPositionalEncoding expected (N, T, {self.dim}) input, got {tuple(x.shape)}")
        _check_length("SinusoidalPositionalEncoding", offset + x.shape[1], self.max_len)
        return x + self.pe[offset : offset + x.shape[1]].to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """x + E[offset : offset + T] with E a trained (max_len, D) table (BERT, GPT)."""

    def __init__(self, dim: int, *, max_len: int = 512):
        super().__init__()
        self.dim, self.max_len = dim, max_len
        self.embedding = nn.Embedding(max_len, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"LearnedPositionalEmbedding expected (N, T, {self.dim}) input, got {tuple(x.shape)}")
        _check_length("LearnedPositionalEmbedding", offset + x.shape[1], self.max_len)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        return x + self.embedding(positions)


class RotaryEmbedding(nn.Module):
    """Rotate pairs of features (i, i + D/2) of queries and keys by angle position * theta_i.

    With q_m = R(m) q and k_n = R(n) k, q_m . k_n = q . R(n - m) k: scores depend on n - m only.
    Applied inside attention to (N, H, T, head_dim) queries and keys; no parameters.
    """

    def __init__(self, head_dim: int, *, base: float = 10000.0, max_len: int = 4096):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head dimension, got {head_dim}")
        self.head_dim, self.max_len = head_dim, max_len
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
        angles = torch.arange(max_len, dtype=torch.float32).unsqueeze(1) * inv_freq  # (max_len, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (max_len, D)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """x: (..., T, head_dim) at positions offset..offset+T-1 -> same shape, rotated."""
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding expected (..., T, {self.head_dim}) input, got {tuple(x.shape)}")
        t = x.shape[-2]
        _check_length("RotaryEmbedding", offset + t, self.max_len)
        cos, sin = self.cos[offset : offset + t].to(x.dtype), self.sin[offset : offset + t].to(x.dtype)
        half = self.head_dim // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # the 90-degree turn of each pair
        return x * cos + rotated * sin
