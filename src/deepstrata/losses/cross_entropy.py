"""Cross-entropy: the loss of classification.

Problem: a classifier needs an objective whose gradient stays informative when it is wrong.
Idea: minimise the negative log-probability of the true class under softmax(logits); its
gradient w.r.t. the logits is simply softmax - one_hot, which never saturates while the
model is confidently wrong. Accepts hard labels (N,) or soft targets (N, K) (label mixing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.registry import register_loss


class CrossEntropy(nn.Module):
    """Softmax cross-entropy on logits (N, K) with labels (N,) or soft targets (N, K)."""

    def __init__(self, *, label_smoothing: float = 0.0, class_weights: list[float] | None = None):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", torch.tensor(class_weights) if class_weights else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)


@register_loss("cross_entropy")
def cross_entropy(*, label_smoothing: float = 0.0, class_weights: list[float] | None = None) -> CrossEntropy:
    """Softmax cross-entropy for classification; hard or soft targets, optional label smoothing."""
    return CrossEntropy(label_smoothing=label_smoothing, class_weights=class_weights)
