"""Transformer blocks and stacks: attention and a feed-forward layer, each in a residual branch.

Problem: attention mixes information across positions but is linear in the values, and deep
stacks of it are hard to optimise. Idea: alternate attention with a position-wise two-layer
MLP, each wrapped in a residual connection with normalisation (Vaswani et al. 2017); placing
the norm before each branch (pre-LN) keeps the residual stream an identity path and trains
without warm-up, where the original after-the-sum placement (post-LN) needs it (Xiong et al.
2020, "On Layer Normalization in the Transformer Architecture").

A block with `cross_attention=True` is a decoder block (self-attention, attention to the
encoder's memory, MLP). Post-LN blocks are tested equal to `torch.nn.TransformerEncoderLayer`
/ `TransformerDecoderLayer` and pre-LN blocks to the same with `norm_first=True`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.nn.attention import KVCache, MultiHeadAttention
from deepstrata.nn.norms import NormKind, make_norm

Activation = Literal["gelu", "relu"]


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D, hidden) -> activation -> dropout -> Linear(hidden, D)."""

    def __init__(self, dim: int, hidden: int, *, activation: Activation = "gelu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden, bias=bias)
        self.linear2 = nn.Linear(hidden, dim, bias=bias)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class TransformerBlock(nn.Module):
    """One encoder block (self-attention, MLP) or decoder block (+ cross-attention), pre- or post-LN."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        activation: Activation = "gelu",
        norm: NormKind = "layer",
        norm_first: bool = True,
        cross_attention: bool = False,
        bias: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout=dropout, bias=bias)
        self.cross_attn = MultiHeadAttention(dim, num_heads, dropout=dropout, bias=bias) if cross_attention else None
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), activation=activation, dropout=dropout, bias=bias)
        self.norm1 = make_norm(norm, dim, eps=eps)
        self.norm2 = make_norm(norm, dim, eps=eps)
        self.norm3 = make_norm(norm, dim, eps=eps) if cross_attention else None
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rotary: nn.Module | None = None,
        cache: KVCache | None = None,
        fused: bool = True,
    ) -> torch.Tensor:
        """x: (N, T, D); memory: (N, S, D) for decoder blocks. Masks as in MultiHeadAttention."""
        if (memory is None) != (self.cross_attn is None):
            raise ValueError(
                "TransformerBlock: a decoder block (cross_attention=True) needs `memory` and an encoder block takes none"
            )

        def sa(h: torch.Tensor) -> torch.Tensor:
            return self.self_attn(h, key_padding_mask=key_padding_mask, is_causal=is_causal, rotary=rotary, cache=cache, fused=fused)[0]

        def ca(h: torch.Tensor) -> torch.Tensor:
            return self.cross_attn(h, memory, key_padding_mask=memory_key_padding_mask, fused=fused)[0]

        if self.norm_first:
            x = x + self.dropout(sa(self.norm1(x)))
            if self.cross_attn is not None:
                x = x + self.dropout(ca(self.norm2(x)))
            return x + self.dropout(self.mlp(self._last_norm(x)))
        x = self.norm1(x + self.dropout(sa(x)))
        if self.cross_attn is not None:
            x = self.norm2(x + self.dropout(ca(x)))
        return self._last_norm(x + self.dropout(self.mlp(x)))

    def _last_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm3(x) if self.norm3 is not None else self.norm2(x)


class TransformerStack(nn.Module):
    """`depth` blocks; pre-LN stacks end with a final norm (the residual stream is never normalised otherwise)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        activation: Activation = "gelu",
        norm: NormKind = "layer",
        norm_first: bool = True,
        cross_attention: bool = False,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim, num_heads, mlp_ratio=mlp_ratio, dropout=dropout, activation=activation,
                norm=norm, norm_first=norm_first, cross_attention=cross_attention,
            )
            for _ in range(depth)
        )
        self.final_norm = make_norm(norm, dim) if norm_first else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rotary: nn.Module | None = None,
        caches: list[KVCache] | None = None,
        fused: bool = True,
    ) -> torch.Tensor:
        """x: (N, T, D) -> (N, T, D). `caches`: one KVCache per block when decoding step by step."""
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"TransformerStack has {len(self.blocks)} blocks but got {len(caches)} caches")
        for i, block in enumerate(self.blocks):
            x = block(
                x, memory=memory, key_padding_mask=key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                is_causal=is_causal, rotary=rotary, cache=caches[i] if caches is not None else None, fused=fused,
            )
        return self.final_norm(x)
