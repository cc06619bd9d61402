"""Decoder-only Transformer (GPT-style) for causal language modelling, with a KV cache.

Problem: a language model must score and generate text one token at a time, each token
conditioned on everything before it, and still train on all positions of a sequence at once.
Idea: a stack of causally masked self-attention blocks predicts token t+1 from tokens <= t at
every position in one pass (teacher forcing for free); at generation time the keys and values
of past tokens are cached so each new token costs one position's work (Radford et al. 2018,
"Improving Language Understanding by Generative Pre-Training"; 2019, "Language Models are
Unsupervised Multitask Learners").
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.nn.attention import KVCache
from deepstrata.nn.input_checks import check_tokens
from deepstrata.nn.norms import NormKind
from deepstrata.nn.positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from deepstrata.nn.sampling import sample_next
from deepstrata.nn.transformer import TransformerStack
from deepstrata.registry import register_model

Positional = Literal["learned", "sinusoidal", "rope", "none"]


class GPT(nn.Module):
    """Token embedding + positions -> pre-LN causal blocks -> output projection tied to the embedding.

    forward(idx (N, T) long, caches=None) -> logits (N, T, vocab_size); logits[:, t] scores
    token t+1. With `caches` (one KVCache per block, from `new_caches()`), idx holds only the
    new tokens and positions continue after the cached ones.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        max_len: int = 256,
        dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        positional: Positional = "learned",
        norm: NormKind = "layer",
        tie_embeddings: bool = True,
    ):
        super().__init__()
        self.vocab_size, self.max_len, self.depth = vocab_size, max_len, depth
        self.tok_embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.tok_embed.weight, std=0.02)
        self.pos = (
            LearnedPositionalEmbedding(dim, max_len=max_len) if positional == "learned"
            else SinusoidalPositionalEncoding(dim, max_len=max_len) if positional == "sinusoidal" else None
        )
        self.rotary = RotaryEmbedding(dim // num_heads, max_len=max_len) if positional == "rope" else None
        self.dropout = nn.Dropout(dropout)
        self.blocks = TransformerStack(dim, depth, num_heads, mlp_ratio=mlp_ratio, dropout=dropout, norm=norm, norm_first=True)
        # Tied: one matrix reads and writes tokens (no shared Parameter, so safetensors can save it).
        self.head = None if tie_embeddings else nn.Linear(dim, vocab_size, bias=False)
        self._init_residual_projections(depth)

    def _init_residual_projections(self, depth: int) -> None:
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * depth)
        for block in self.blocks.blocks:
            for lin in (block.self_attn.out_proj, block.mlp.linear2):
                nn.init.normal_(lin.weight, std=0.02 / (2 * depth) ** 0.5)

    def new_caches(self) -> list[KVCache]:
        return [KVCache() for _ in range(self.depth)]

    def forward(self, idx: torch.Tensor, *, caches: list[KVCache] | None = None) -> torch.Tensor:
        offset = caches[0].length if caches else 0
        check_tokens("GPT", idx, self.max_len - offset)
        x = self.tok_embed(idx)  # (N, T, D)
        if self.pos is not None:
            x = self.pos(x, offset=offset)
        x = self.blocks(self.dropout(x), is_causal=True, rotary=self.rotary, caches=caches)
        return self.head(x) if self.head is not None else x @ self.tok_embed.weight.T  # (N, T, V)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend idx (N, T0) by max_new_tokens sampled tokens -> (N, T0 + max_new_tokens).

        temperature 0 is greedy. The context is cropped to the last max_len tokens; with the
        cache, a context that would pass max_len is re-encoded from its cropped window, so the
        tokens are the same as without the cache.
        """
        check_tokens("GPT.generate", idx, 10**9)
        was_training = self.training
        self.eval()
        caches = self.new_caches() if use_cache else None
        fed = 0  # tokens of idx already in the caches
        for _ in range(max_new_tokens):
            if caches is not None and fed and fed < self.max_len:
                logits = self(idx[:, fed:], caches=caches)
            else:
                context = idx[:, -self.max_len :]
                caches = self.new_caches() if use_cache else None
                logits = self(context, caches=caches)
            fed = idx.shape[1]
            nxt = sample_next(logits[:, -1], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            idx = torch.cat([idx, nxt[:, None]], dim=1)
        self.train(was_training)
        return idx


@register_model(
    "gpt",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 20, "kwargs": {"vocab_size": 20, "dim": 32, "depth": 2, "num_heads": 2, "max_len": 16}},
)
def gpt(
    *,
    vocab_size: int,
    max_len: int = 256,
    dim: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 4.0,
    dropout: float = 0.0,
    positional: Positional = "learned",
    norm: NormKind = "layer",
    tie_embeddings: bool = True,
) -> GPT:
    """GPT-style causal language model: tokens (N,T) -> next-token logits (N,T,V); KV-cached generate()."""
    return GPT(
        vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
        dropout=dropout, positional=positional, norm=norm, tie_embeddings=tie_embeddings,
    )
