"""Triplet loss with a margin: metric learning from anchor, positive and negative examples.

Problem: face verification and retrieval need an embedding in which distance means
dissimilarity, for identities never seen in training. Idea: ask each anchor to be closer to a
positive of its own identity than to a negative by at least a margin,
max(0, d(a, p) - d(a, n) + margin) (Schroff et al. 2015, "FaceNet").
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.losses._checks import check_same_shape
from deepstrata.registry import register_loss


class TripletMargin(nn.Module):
    """Mean of max(0, ||a - p||_2 - ||a - n||_2 + margin) over embeddings (N, D).

    Fits verification/retrieval embeddings. The gradient is zero for triplets already
    satisfied, so with random sampling most triplets soon give nothing: mining hard or
    semi-hard negatives is what makes it train; the norm's gradient is undefined at a = p,
    hence the small eps inside the distance (as torch's TripletMarginLoss).
    """

    def __init__(self, *, margin: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.margin = margin
        self.eps = eps

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if anchor.dim() != 2:
            raise ValueError(f"triplet_margin expects embeddings (N, D), got anchor shape {tuple(anchor.shape)}")
        check_same_shape("triplet_margin", anchor, positive, ("anchor", "positive"))
        check_same_shape("triplet_margin", anchor, negative, ("anchor", "negative"))
        d_pos = (anchor - positive + self.eps).norm(dim=1)
        d_neg = (anchor - negative + self.eps).norm(dim=1)
        return (d_pos - d_neg + self.margin).clamp(min=0).mean()


@register_loss("triplet_margin")
def triplet_margin(*, margin: float = 1.0) -> TripletMargin:
    """Triplet loss: anchor closer to positive than to negative by a margin (FaceNet)."""
    return TripletMargin(margin=margin)
