"""The one small interface every classification backbone shares.

Problem: fine-tuning, Grad-CAM, pruning and distillation all need to reach "the features"
and "the head" of a model; if each tool learns each model's internals, tools and models
multiply into special cases.
Idea: every classifier exposes `forward_features(x)`, `forward_head(features)` and
`reset_head(num_classes)`, and `forward = forward_head(forward_features(x))`. (timm.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class of classifiers: features, then a head that can be replaced."""

    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_features(self) -> int:
        """Width of the vector `forward_features` returns (the head's input)."""
        head = self.head
        linear = head if isinstance(head, nn.Linear) else next(m for m in head.modules() if isinstance(m, nn.Linear))
        return linear.in_features

    def reset_head(self, num_classes: int) -> None:
        """Replace the classification head with a fresh one for `num_classes` classes."""
        self.head = nn.Linear(self.num_features, num_classes)


def check_input(layer: str, x: torch.Tensor, expected: Sequence[int | None]) -> None:
    """Raise a shape error naming the layer and both shapes; None in `expected` is any size.

    `expected` describes one batch, e.g. (None, 1, 8, 8) for N grey 8x8 images.
    """
    ok = x.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        want = "(" + ", ".join("N" if i == 0 and e is None else "*" if e is None else str(e) for i, e in enumerate(expected)) + ")"
        raise ValueError(f"{layer} expected {want} input, got {tuple(x.shape)}")
