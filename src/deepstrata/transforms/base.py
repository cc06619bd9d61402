"""Batch transforms: what a recipe's `data.augment` list names.

Problem: augmentations that see one example at a time cannot mix labels across examples
(MixUp, CutMix), and per-example Python loops are slow where a batched op is cheap.
Idea: every transform takes and returns a whole batch `(x, y)`: image augmentations change
x only; label-mixing transforms return soft targets (N, K). Training-only by default;
a transform that is part of the input's definition (normalisation) sets `every_split`
and is applied to validation, test and prediction inputs too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class BatchTransform(nn.Module):
    """(x: (N, ...), y: (N,) or (N, K)) -> (x, y); randomness from torch's global generator.

    `every_split`: apply to evaluation batches too (normalisation), not only training.
    """

    every_split: ClassVar[bool] = False

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def input_spec_update(self) -> dict[str, Any]:
        """What prediction must replay (only for `every_split` transforms); {} by default."""
        return {}


def check_images(name: str, x: torch.Tensor) -> None:
    """Image transforms take (N, C, H, W) float batches; name the transform and the shape otherwise."""
    if x.dim() != 4:
        raise ValueError(f"{name} expects image batches of shape (N, C, H, W), got {tuple(x.shape)}; it applies to image datasets only")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects float images (scaled to [0, 1]), got dtype {x.dtype}")
