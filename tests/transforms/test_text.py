"""Text corruption: the 80/10/10 rule and the deletion/swap rates come out right with a fixed seed."""

from __future__ import annotations

import pytest
import torch

from deepstrata.data.tokenizers import CLS, MASK, PAD, SPECIALS
from deepstrata.errors import UserError
from deepstrata.registry import create
from deepstrata.transforms.text import IGNORE, mlm_mask, random_deletion, random_swap

V = 50
N = 200_000


def tokens(n: int = N, seed: int = 0) -> torch.Tensor:
    return torch.randint(len(SPECIALS), V, (n,), generator=torch.Generator().manual_seed(seed))


def within(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(observed - p) <= sigmas * (p * (1 - p) / n) ** 0.5


def test_mlm_80_10_10() -> None:
    x = tokens()
    inputs, labels = mlm_mask(x, vocab_size=V, generator=torch.Generator().manual_seed(1))
    selected = labels != IGNORE
    k = int(selected.sum())
    assert within(k / N, 0.15, N)
    assert torch.equal(labels[selected], x[selected]) and torch.equal(inputs[~selected], x[~selected])
    masked = (inputs[selected] == MASK).float().mean().item()
    kept = (inputs[selected] == x[selected]).float().mean().item()
    assert within(masked, 0.8, k)
    # kept = the 10% left alone + random replacements that happen to draw the same id (1/44)
    p_kept = 0.1 + 0.1 / (V - len(SPECIALS))
    assert within(kept, p_kept, k)
    assert within(1 - masked - kept, 0.1 - 0.1 / (V - len(SPECIALS)), k)
    assert (inputs[selected] >= len(SPECIALS)).logical_or(inputs[selected] == MASK).all()


def test_mlm_never_selects_special_tokens() -> None:
    x = tokens(1000).view(10, 100)
    x[:, 0], x[:, 90:] = CLS, PAD
    _, labels = mlm_mask(x, vocab_size=V, generator=torch.Generator().manual_seed(0), mask_prob=1.0)
    assert (labels[:, 0] == IGNORE).all() and (labels[:, 90:] == IGNORE).all() and (labels[:, 1:90] != IGNORE).all()


def test_mlm_is_reproducible_from_the_seed() -> None:
    x = tokens(500)
    a = mlm_mask(x, vocab_size=V, generator=torch.Generator().manual_seed(3))
    b = mlm_mask(x, vocab_size=V, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_deletion_rate_and_order() -> None:
    x = torch.arange(len(SPECIALS), len(SPECIALS) + 100).repeat(2000, 1)  # (2000, 100), increasing rows
    out = random_deletion(x, p=0.2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    kept = out != PAD
    assert within(1 - kept.float().mean().item(), 0.2, x.numel())
    for row, mask in zip(out[:50], kept[:50]):
        survivors = row[mask]
        assert (survivors[1:] > survivors[:-1]).all()  # order preserved, padding at the tail
        assert mask[: int(mask.sum())].all()


def test_swap_rate_and_multiset() -> None:
    x = torch.arange(len(SPECIALS), len(SPECIALS) + 100).repeat(2000, 1)  # distinct ids in each row
    out = random_swap(x, p=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.sort(dim=1).values, x.sort(dim=1).values)
    moved = (out != x).float().mean().item()
    # every selected position moves except one per row with an odd number selected (~0.5 per row)
    assert abs(moved - (0.1 - 0.5 / 100)) < 0.01


def test_registered_augmentations_and_errors() -> None:
    aug = create("transform", "token_swap", p=0.5, seed=0)
    x = tokens(64)
    assert aug(x).shape == x.shape
    assert create("transform", "token_deletion", p=0.0)(x).equal(x)
    with pytest.raises(UserError, match="int64 token ids"):
        random_swap(x.float(), p=0.1, generator=torch.Generator())
    with pytest.raises(UserError, match="probability"):
        random_deletion(x, p=1.5, generator=torch.Generator())
