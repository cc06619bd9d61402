"""Pooling: summarise a window of a feature map, or a whole padded sequence, in fewer numbers.

Problem: a classifier needs one vector per example, but convolutions give a map that grows with
the image and sequence models give one state per step, some of them padding.
Idea: downsample maps by taking the maximum or the mean of each 2x2 window (LeCun et al. 1998;
max-pooling: Ranzato et al. 2007), and reduce a sequence to the mean of its real steps, the
sentence vector of Reimers & Gurevych 2019 ("Sentence-BERT"). Models that pool sequences
return their per-step features with padding steps set to zero, so the head can find the real
steps without the input.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Pool = Literal["max", "avg"]
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def nonzero_steps(x: torch.Tensor) -> torch.Tensor:
    """(N, T, D) -> (N, T) bool, True where a step's state is not all zeros (padding steps are zeroed)."""
    return x.ne(0).any(dim=-1)


def masked_mean(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of x (N, T, D) over the steps where keep (N, T) is True -> (N, D); a row with none kept gives zeros."""
    w = keep.unsqueeze(-1).to(x.dtype)  # (N, T, 1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
