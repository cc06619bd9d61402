"""Focal loss: cross-entropy that stops listening to examples it already gets right.

Problem: with heavy class imbalance (dense detection: 100,000 easy background boxes per object)
the many easy examples each contribute a small loss but together dominate the gradient. Idea:
scale cross-entropy by (1 - p_t)^gamma so well-classified examples (p_t -> 1) fade out and the
gradient concentrates on hard ones; alpha optionally re-weights classes (Lin et al. 2017,
"Focal Loss for Dense Object Detection").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.losses._checks import check_logits_labels
from deepstrata.registry import register_loss


class FocalLoss(nn.Module):
    """Mean of -alpha_y (1 - p_y)^gamma log p_y over logits (N, K) and labels (N,).

    Fits imbalanced classification. Its gradient is cross-entropy's times a factor that goes to
    0 as the model becomes confident, so easy examples stop pulling; with gamma=0 it *is*
    cross-entropy. Large gamma slows early training, when every example is still hard-ish.
    """

    def __init__(self, *, gamma: float = 2.0, alpha: list[float] | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss: gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.register_buffer("alpha", torch.tensor(alpha) if alpha else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_labels("focal loss", logits, target)
        logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)  # (N,) log p_y
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.alpha is not None:
            if self.alpha.numel() != logits.shape[1]:
                raise ValueError(f"focal loss: alpha has {self.alpha.numel()} weights but logits have {logits.shape[1]} classes")
            loss = loss * self.alpha.to(logits.dtype)[target]
        return loss.mean()


@register_loss("focal")
def focal(*, gamma: float = 2.0, alpha: list[float] | None = None) -> FocalLoss:
    """Focal loss for imbalanced classification: cross-entropy scaled by (1 - p_true)^gamma."""
    return FocalLoss(gamma=gamma, alpha=alpha)
