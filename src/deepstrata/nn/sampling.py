"""Choosing the next token from a language model's logits: greedy, temperature, top-k, top-p.

Problem: always taking the most likely token makes text repetitive and dull, while sampling
from the full distribution lets the long tail of unlikely tokens derail it. Idea: sharpen or
flatten the distribution with a temperature, then sample only among the k most likely tokens
(Fan et al. 2018, "Hierarchical Neural Story Generation") or the smallest set whose
probability reaches p, "nucleus sampling" (Holtzman et al. 2020, "The Curious Case of Neural
Text Degeneration"); temperature 0 is greedy decoding.
"""

from __future__ import annotations

import torch

from deepstrata.errors import UserError


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """logits (N, V) with everything outside the top-k / nucleus set to -inf (at least one token kept)."""
    if top_k is not None:
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked above it already reach p (so the top token always stays)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (N, V) -> next token ids (N,). temperature 0 -> argmax (greedy)."""
    if logits.dim() != 2:
        raise ValueError(f"sample_next expected (N, V) logits, got {tuple(logits.shape)}")
    if temperature < 0:
        raise UserError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)
