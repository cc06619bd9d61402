"""MixUp and CutMix: train on blends of two examples with labels blended in the same proportion.

Problem: a classifier trained on one-hot labels becomes over-confident and behaves
erratically between training examples.
Idea: MixUp (Zhang et al. 2018) trains on lam * x_i + (1 - lam) * x_j with the soft target
lam * y_i + (1 - lam) * y_j, lam ~ Beta(alpha, alpha); CutMix (Yun et al. 2019) instead
pastes a random box of x_j into x_i and mixes the labels by the pasted area, keeping every
pixel a real one. One lam per batch, partners from a random permutation of the batch; the
cross-entropy loss and the classification task accept the (N, K) soft targets.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepstrata.registry import register_transform
from deepstrata.transforms.base import BatchTransform, check_images


def soft_targets(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) class indices or (N, K) soft targets -> (N, K) float probabilities."""
    if y.dim() == 2:
        if y.shape[1] != num_classes:
            raise ValueError(f"label mixing: soft targets have {y.shape[1]} classes, expected {num_classes}")
        return y.float()
    if y.dim() != 1 or y.is_floating_point():
        raise ValueError(f"label mixing needs class indices (N,) or soft targets (N, K), got {tuple(y.shape)} {y.dtype}")
    return F.one_hot(y, num_classes).float()


class _Mix(BatchTransform):
    def __init__(self, *, alpha: float, num_classes: int | None, name: str):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"{name}: alpha must be positive, got {alpha}")
        if num_classes is None or num_classes < 2:
            raise ValueError(f"{name} needs the number of classes (a classification dataset), got {num_classes}")
        self.alpha, self.num_classes, self.name = alpha, num_classes, name
        self.last_lam: float | None = None  # the label weight of the unpermuted batch, for tests and logs

    def sample_lam(self) -> float:
        return float(torch.distributions.Beta(self.alpha, self.alpha).sample())


class MixUp(_Mix):
    """x = lam * x + (1 - lam) * x[perm]; y = lam * y + (1 - lam) * y[perm]."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not x.is_floating_point():
            raise ValueError(f"mixup expects float inputs, got {x.dtype}")
        target = soft_targets(y, self.num_classes)
        lam = self.sample_lam()
        perm = torch.randperm(len(x))
        self.last_lam = lam
        return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


class CutMix(_Mix):
    """Paste one random box of x[perm] into x; the label weight is the area that stayed."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images("cutmix", x)
        target = soft_targets(y, self.num_classes)
        lam = self.sample_lam()
        perm = torch.randperm(len(x))
        h, w = x.shape[-2:]
        # A box of area (1 - lam) * H * W centred uniformly at random, clipped at the border.
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2 + cut_h % 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2 + cut_w % 2, w)
        mixed = x.clone()
        mixed[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the exact share of pixels that stayed
        self.last_lam = lam
        return mixed, lam * target + (1 - lam) * target[perm]


@register_transform("mixup")
def mixup(*, alpha: float = 0.2, num_classes: int | None = None) -> MixUp:
    """MixUp: blend pairs of inputs and their labels, lam ~ Beta(alpha, alpha); soft targets (N, K)."""
    return MixUp(alpha=alpha, num_classes=num_classes, name="mixup")


@register_transform("cutmix")
def cutmix(*, alpha: float = 1.0, num_classes: int | None = None) -> CutMix:
    """CutMix: paste a random box from another image; labels mixed by the pasted area; soft targets (N, K)."""
    return CutMix(alpha=alpha, num_classes=num_classes, name="cutmix")
