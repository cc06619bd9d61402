"""Token-level text corruption: BERT's masking rule, random deletion and random swap.

Problem: a bidirectional encoder cannot be trained to predict the next token (it sees it), and
small text data sets overfit to exact token sequences. Idea: masked-language modelling hides
15% of the tokens and asks the model to restore them, replacing a chosen token by <mask> 80% of
the time, by a random token 10% and leaving it 10%, so the encoder cannot rely on seeing
<mask> (Devlin et al. 2019, "BERT"); random deletion and swap perturb sequences while keeping
most of their content (Wei & Zou 2019, "EDA: Easy Data Augmentation").

All functions take a LongTensor of ids, (T,) or (N, T), and an explicit `torch.Generator`;
special tokens (padding, <cls>, ...) are never selected.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepstrata.data.tokenizers import MASK, PAD, SPECIALS
from deepstrata.errors import UserError
from deepstrata.registry import register_transform

IGNORE = -100  # label of a position that is not predicted (F.cross_entropy's ignore_index)


def _check(name: str, tokens: torch.Tensor, p: float) -> None:
    if tokens.dtype != torch.int64 or tokens.dim() not in (1, 2):
        raise UserError(f"{name} expected int64 token ids of shape (T,) or (N, T), got {tokens.dtype} {tuple(tokens.shape)}")
    if not 0.0 <= p <= 1.0:
        raise UserError(f"{name}: probability must be in [0, 1], got {p}")


def _candidates(tokens: torch.Tensor, special_ids: Sequence[int]) -> torch.Tensor:
    """True where a token may be corrupted (not a special token)."""
    return ~torch.isin(tokens, torch.tensor(list(special_ids), dtype=tokens.dtype, device=tokens.device))


def mlm_mask(
    tokens: torch.Tensor,
    *,
    vocab_size: int,
    generator: torch.Generator,
    mask_prob: float = 0.15,
    mask_id: int = MASK,
    special_ids: Sequence[int] = tuple(range(len(SPECIALS))),
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 rule. Returns (inputs, labels), both shaped like `tokens`.

    labels holds the original id at the selected positions and IGNORE (-100) elsewhere;
    inputs has <mask> at 80% of the selected positions, a random non-special id at 10% and
    the original id at the remaining 10%.
    """
    _check("mlm_mask", tokens, mask_prob)
    device = tokens.device
    eligible = _candidates(tokens, special_ids)
    u = torch.rand(tokens.shape, generator=generator, device=device)
    selected = eligible & (u < mask_prob)
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE))
    action = torch.rand(tokens.shape, generator=generator, device=device)
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    low = len(SPECIALS) if vocab_size > len(SPECIALS) else 0
    random_ids = torch.randint(low, vocab_size, tokens.shape, generator=generator, device=device)
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


def random_deletion(
    tokens: torch.Tensor,
    *,
    p: float,
    generator: torch.Generator,
    pad_id: int = PAD,
    special_ids: Sequence[int] = tuple(range(len(SPECIALS))),
) -> torch.Tensor:
    """Delete each non-special token with probability p; survivors shift left, the tail is padded.

    The output keeps the input's shape (fixed-length batches), so it is padded with `pad_id`.
    """
    _check("random_deletion", tokens, p)
    squeeze = tokens.dim() == 1
    rows = tokens.unsqueeze(0) if squeeze else tokens
    delete = _candidates(rows, special_ids) & (torch.rand(rows.shape, generator=generator, device=rows.device) < p)
    out = torch.full_like(rows, pad_id)
    for i in range(rows.shape[0]):
        kept = rows[i][~delete[i]]
        out[i, : kept.numel()] = kept
    return out.squeeze(0) if squeeze else out


def random_swap(
    tokens: torch.Tensor,
    *,
    p: float,
    generator: torch.Generator,
    special_ids: Sequence[int] = tuple(range(len(SPECIALS))),
) -> torch.Tensor:
    """Select each non-special token with probability p and swap the selected ones in random pairs.

    Every selected position receives another selected position's token (one is left in place
    when the count is odd), so the multiset of tokens is unchanged and about a fraction p of
    positions move.
    """
    _check("random_swap", tokens, p)
    squeeze = tokens.dim() == 1
    rows = tokens.unsqueeze(0) if squeeze else tokens
    chosen = _candidates(rows, special_ids) & (torch.rand(rows.shape, generator=generator, device=rows.device) < p)
    out = rows.clone()
    for i in range(rows.shape[0]):
        pos = chosen[i].nonzero().flatten()
        pos = pos[torch.randperm(pos.numel(), generator=generator)]
        pairs = pos[: pos.numel() // 2 * 2].view(-1, 2)  # (pairs, 2)
        out[i, pairs[:, 0]], out[i, pairs[:, 1]] = rows[i, pairs[:, 1]], rows[i, pairs[:, 0]]
    return out.squeeze(0) if squeeze else out


class TokenDeletion:
    """Augmentation: random token deletion with probability p (seeded)."""

    def __init__(self, *, p: float = 0.1, seed: int = 0):
        self.p, self.generator = p, torch.Generator().manual_seed(seed)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return random_deletion(tokens, p=self.p, generator=self.generator)


class TokenSwap:
    """Augmentation: random pairwise token swap with probability p per token (seeded)."""

    def __init__(self, *, p: float = 0.1, seed: int = 0):
        self.p, self.generator = p, torch.Generator().manual_seed(seed)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return random_swap(tokens, p=self.p, generator=self.generator)


@register_transform("token_deletion")
def token_deletion(*, p: float = 0.1, seed: int = 0) -> TokenDeletion:
    """Delete each non-special token with probability p; pad the tail (EDA, Wei & Zou 2019)."""
    return TokenDeletion(p=p, seed=seed)


@register_transform("token_swap")
def token_swap(*, p: float = 0.1, seed: int = 0) -> TokenSwap:
    """Swap randomly chosen non-special tokens in pairs, about a fraction p of positions (EDA)."""
    return TokenSwap(p=p, seed=seed)
