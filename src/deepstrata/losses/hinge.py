"""Multi-class hinge loss: the SVM's margin objective on a network's scores.

Problem: cross-entropy keeps pushing correct scores up forever, even on examples that are
already safely right. Idea: require the true class's score to beat every other by a margin and
charge only the shortfall, sum_{j != y} max(0, margin - s_y + s_j) / K (Weston & Watkins 1999;
Cortes & Vapnik 1995); the gradient is exactly zero once the margin holds.
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.losses._checks import check_logits_labels
from deepstrata.registry import register_loss


class MultiClassHinge(nn.Module):
    """Mean over the batch of sum_{j != y} max(0, margin - s_y + s_j)^p / K, p in {1, 2}.

    Fits classification when only the decision matters (max-margin). Its gradient is piecewise
    constant: +-1 for each violating class, 0 otherwise, so training stops on satisfied examples
    (robust, but no probability calibration and a kink at the margin; p=2 smooths it).
    """

    def __init__(self, *, margin: float = 1.0, power: int = 1):
        super().__init__()
        if power not in (1, 2):
            raise ValueError(f"hinge loss: power must be 1 or 2, got {power}")
        self.margin = margin
        self.power = power

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_labels("hinge loss", logits, target)
        true = logits.gather(1, target[:, None])  # (N, 1)
        viol = (self.margin - true + logits).clamp(min=0) ** self.power  # (N, K)
        viol = viol.scatter(1, target[:, None], 0.0)  # the true class is not its own rival
        return viol.sum(dim=1).mean() / logits.shape[1]


@register_loss("hinge")
def hinge(*, margin: float = 1.0, power: int = 1) -> MultiClassHinge:
    """Multi-class (Weston-Watkins) hinge loss: zero once the true score wins by the margin."""
    return MultiClassHinge(margin=margin, power=power)
