"""Sequence metrics: exact match of whole outputs and per-token accuracy.

Problem: per-token accuracy flatters a sequence model (nine right characters out of ten is
90%, yet the date is wrong); exact match alone hides how close the misses are.
Idea: report both on decoded outputs: exact match counts outputs equal to the target at every
position; token accuracy counts equal tokens at the target's non-padding positions. Both take
preds and target as (N, T) token ids in canonical form (after <eos>: padding).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from deepstrata.registry import register_metric


class _Ratio(nn.Module):
    """hits / count accumulated over batches, with the torchmetrics-style update/compute/reset/clone."""

    def __init__(self, *, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.reset()

    def reset(self) -> None:
        self.hits, self.count, self.update_count = 0, 0, 0

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.hits / self.count if self.count else float("nan"))

    def clone(self) -> _Ratio:
        return copy.deepcopy(self)

    def _check(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape or preds.dim() != 2:
            raise ValueError(f"{type(self).__name__} expected preds and target of the same shape (N, T), got {tuple(preds.shape)} and {tuple(target.shape)}")


class ExactMatch(_Ratio):
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self._check(preds, target)
        self.hits += int((preds == target).all(dim=1).sum())
        self.count += preds.shape[0]
        self.update_count += 1


class TokenAccuracy(_Ratio):
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self._check(preds, target)
        real = target != self.pad_id
        self.hits += int(((preds == target) & real).sum())
        self.count += int(real.sum())
        self.update_count += 1


@register_metric("exact_match")
def exact_match() -> ExactMatch:
    """Share of decoded sequences equal to the target at every position."""
    return ExactMatch()


@register_metric("token_accuracy")
def token_accuracy(*, pad_id: int = 0) -> TokenAccuracy:
    """Share of the target's non-padding tokens that the decoded sequence gets right."""
    return TokenAccuracy(pad_id=pad_id)
