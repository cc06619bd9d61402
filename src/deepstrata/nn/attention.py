"""Scaled dot-product and multi-head attention, with padding and causal masks and a KV cache.

Problem: a sequence model must let every position draw on any other position, whatever the
distance, without passing information step by step as an RNN does. Idea: each query takes a
softmax-weighted average of the values, weighted by its scaled dot products with the keys,
softmax(Q K^T / sqrt(d)) V, computed in parallel by several heads on learned projections
(Vaswani et al. 2017, "Attention Is All You Need"). The fused path is torch's
`F.scaled_dot_product_attention` (memory-efficient / flash kernels, Dao et al. 2022); the
reference path below writes the formula out and is tested equal to it.

Mask convention (as in `F.scaled_dot_product_attention`): a boolean `attn_mask` is True where
a query MAY attend to a key; a float mask is added to the scores. `key_padding_mask` follows
`torch.nn.MultiheadAttention`: (N, S) bool, True at PADDING positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(q_len: int, k_len: int | None = None, *, device: torch.device | None = None) -> torch.Tensor:
    """(L, S) bool, True where query i may attend key j: j <= i + (S - L).

    With S > L the queries are the last L positions of the sequence (decoding with a KV cache).
    """
    k_len = q_len if k_len is None else k_len
    i = torch.arange(q_len, device=device).unsqueeze(1)
    j = torch.arange(k_len, device=device).unsqueeze(0)
    return j <= i + (k_len - q_len)


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(N, S) bool, True at padding tokens: the `key_padding_mask` of a batch of token ids."""
    return tokens == pad_id


def merge_masks(
    *,
    q_len: int,
    k_len: int,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """One boolean "may attend" mask broadcastable to (N, H, L, S), or None when nothing is masked."""
    mask = causal_mask(q_len, k_len, device=device) if is_causal else None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise ValueError("merge_masks combines boolean masks; pass a float attn_mask on its own")
        mask = attn_mask if mask is None else mask & attn_mask
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]  # (N, 1, 1, S)
        mask = keep if mask is None else mask & keep
    return mask


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scale + mask) v, written out. q: (..., L, E), k: (..., S, E), v: (..., S, Ev).

    Returns (output (..., L, Ev), weights (..., L, S)). Materialises the (L, S) score matrix:
    O(L * S) memory, which the fused path avoids.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., L, S)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], device=q.device), float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    fused: bool = True,
) -> torch.Tensor:
    """Attention output (..., L, Ev); `fused=False` runs `reference_attention` instead."""
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention expected q (..., L, E), k (..., S, E), v (..., S, Ev), "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=dropout_p, scale=scale)
    return reference_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=dropout_p, scale=scale)[0]


@dataclass
class KVCache:
    """Keys and values of the positions decoded so far, (N, H, S, head_dim) each, per layer.

    Autoregressive decoding then computes projections only for the new tokens: step t costs
    O(t) instead of re-running the whole prefix, O(t^2).
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else int(self.k.shape[-2])

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections; self- or cross-attention.

    Same maths and parameter count as `torch.nn.MultiheadAttention(batch_first=True)`, whose
    packed `in_proj_weight` is our q/k/v weights stacked (tested with copied weights).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.num_heads, self.head_dim).transpose(1, 2)  # (N, H, T, head_dim)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        average_attn_weights: bool = True,
        rotary: nn.Module | None = None,
        cache: KVCache | None = None,
        fused: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (N, L, E); key/value (N, S, kdim/vdim), default: the query (self-attention).

        attn_mask: (L, S), (N, L, S) or (N, H, L, S), bool True = may attend, or float added to
        the scores; key_padding_mask: (N, S) bool, True = padding. `is_causal` masks keys after
        each query (offset by the cache length when decoding). `rotary` rotates queries and keys
        by their positions. `cache` (self-attention only) receives the new keys/values and
        supplies the old ones. Returns (output (N, L, E), weights (N, L, S) or (N, H, L, S) when
        need_weights, else None). Weights need the reference path.
        """
        if query.dim() != 3 or query.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiHeadAttention expected query (N, L, {self.embed_dim}), got {tuple(query.shape)}")
        self_attention = key is None
        key = query if key is None else key
        value = key if value is None else value
        if key.dim() != 3 or key.shape[0] != query.shape[0] or value.shape[:2] != key.shape[:2]:
            raise ValueError(
                f"MultiHeadAttention expected key/value (N, S, *) with N={query.shape[0]}, "
                f"got key {tuple(key.shape)}, value {tuple(value.shape)}"
            )
        if cache is not None and not self_attention:
            raise ValueError("MultiHeadAttention: a KV cache is for self-attention; cross-attention keys do not grow")
        past = cache.length if cache is not None else 0
        q = self._heads(self.q_proj(query))  # (N, H, L, head_dim)
        k = self._heads(self.k_proj(key))  # (N, H, S_new, head_dim)
        v = self._heads(self.v_proj(value))
        if rotary is not None:
            q = rotary(q, offset=past)
            k = rotary(k, offset=past)
        if cache is not None:
            k, v = cache.append(k, v)  # (N, H, past + S_new, head_dim)
        n, _, q_len, _ = q.shape
        k_len = k.shape[-2]
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (n, k_len):
            raise ValueError(f"MultiHeadAttention expected key_padding_mask ({n}, {k_len}), got {tuple(key_padding_mask.shape)}")
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(1)  # (N, 1, L, S): the same mask for every head
        # The kernel's own causal flag fits only a plain causal prefill (no other mask, no cache).
        causal_flag = is_causal and attn_mask is None and key_padding_mask is None and q_len == k_len
        float_mask = attn_mask if attn_mask is not None and attn_mask.dtype != torch.bool else None
        bool_mask = merge_masks(
            q_len=q_len, k_len=k_len, attn_mask=None if float_mask is not None else attn_mask,
            key_padding_mask=key_padding_mask, is_causal=is_causal and not causal_flag, device=q.device,
        )
        if float_mask is not None and bool_mask is not None:
            attn_mask = float_mask.masked_fill(~bool_mask, float("-inf"))
        else:
            attn_mask = float_mask if float_mask is not None else bool_mask
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            out, weights = reference_attention(q, k, v, attn_mask=attn_mask, is_causal=causal_flag, dropout_p=dropout_p)
            if average_attn_weights:
                weights = weights.mean(dim=1)  # (N, L, S)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal_flag, dropout_p=dropout_p, fused=fused)
        out = out.transpose(1, 2).reshape(n, q_len, self.embed_dim)  # (N, L, E)
        return self.out_proj(out), weights

    def load_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a `torch.nn.MultiheadAttention` with the same sizes into this module."""
        if mha.embed_dim != self.embed_dim or mha.num_heads != self.num_heads or not mha._qkv_same_embed_dim:
            raise ValueError("load_from_torch needs a torch MultiheadAttention with the same embed_dim, num_heads and kdim=vdim=embed_dim")
        with torch.no_grad():
            for proj, w in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3)):
                proj.weight.copy_(w)
            if mha.in_proj_bias is not None:
                for proj, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.chunk(3)):
                    proj.bias.copy_(b)
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        return self
