"""Binary cross-entropy on logits: the loss of yes/no and multi-label prediction.

Problem: sigmoid followed by log(p) underflows for confident logits (log(0) = -inf) and its
gradient through a saturated sigmoid vanishes. Idea: fuse them, BCE(z, y) = max(z, 0) - z*y +
log(1 + exp(-|z|)), whose gradient w.r.t. the logit is exactly sigmoid(z) - y: finite, and
never vanishing while the prediction is wrong (the logistic-regression loss; Cox 1958).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.registry import register_loss


class BCEWithLogits(nn.Module):
    """Mean BCE on logits (N,) or (N, K) against targets in [0, 1] of the same shape.

    Integer labels (N,) with logits (N, K) are turned into one-hot targets (one-vs-rest).
    `pos_weight` > 1 up-weights positives (class imbalance): loss_pos * pos_weight.
    """

    def __init__(self, *, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2 and target.dim() == 1 and not target.is_floating_point():
            target = F.one_hot(target, logits.shape[1])
        if target.shape != logits.shape:
            raise ValueError(f"bce_with_logits: target shape {tuple(target.shape)} differs from logits {tuple(logits.shape)}")
        target = target.to(logits.dtype)
        # Stable form: max(z,0) - z*y + log1p(exp(-|z|)); pos_weight scales the y*log(sigmoid(z)) term.
        log_sig_pos = -F.softplus(-logits)  # log sigmoid(z)
        log_sig_neg = -F.softplus(logits)  # log (1 - sigmoid(z))
        w = 1.0 if self.pos_weight is None else self.pos_weight
        return -(w * target * log_sig_pos + (1 - target) * log_sig_neg).mean()


@register_loss("bce_with_logits")
def bce_with_logits(*, pos_weight: float | None = None) -> BCEWithLogits:
    """Binary cross-entropy on logits for binary/multi-label targets; stable, gradient sigmoid(z) - y."""
    return BCEWithLogits(pos_weight=pos_weight)
