"""Capsule margin loss: a separate hinge per class on the length of its capsule.

Problem: a capsule network says "class k is present" with the length of capsule k, a number
in [0, 1); softmax cross-entropy would force the classes to compete for one unit of
probability, and several digits may be present at once.
Idea: for every class k, L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2,
pushing the true class's length above m+ = 0.9 and the others below m- = 0.1 (lambda = 0.5
down-weights the absent classes); plus, optionally, `reconstruction_weight` times the summed
squared error of the decoder's reconstruction, a regulariser that makes the capsules encode
the instantiation parameters. (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules", eq. 4.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.registry import register_loss


class MarginLoss(nn.Module):
    """Margin loss on capsule lengths (N, K) and labels (N,); mean over the batch."""

    def __init__(self, *, m_plus: float = 0.9, m_minus: float = 0.1, down_weight: float = 0.5, reconstruction_weight: float = 0.0005):
        super().__init__()
        if not 0.0 <= m_minus < m_plus <= 1.0:
            raise ValueError(f"margin loss needs 0 <= m_minus < m_plus <= 1, got m_minus={m_minus}, m_plus={m_plus}")
        self.m_plus, self.m_minus, self.down_weight = m_plus, m_minus, down_weight
        self.reconstruction_weight = reconstruction_weight

    def forward(
        self,
        lengths: torch.Tensor,
        target: torch.Tensor,
        *,
        reconstruction: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """lengths: (N, K) in [0, 1); target: (N,) class indices; reconstruction/images: (N, ...)."""
        if lengths.dim() != 2 or target.shape != lengths.shape[:1]:
            raise ValueError(f"margin loss expected lengths (N, K) and labels (N,), got {tuple(lengths.shape)} and {tuple(target.shape)}")
        present = F.one_hot(target, lengths.shape[1]).to(lengths.dtype)  # T_k
        loss = present * F.relu(self.m_plus - lengths).square() + self.down_weight * (1 - present) * F.relu(lengths - self.m_minus).square()
        loss = loss.sum(dim=1).mean()
        if reconstruction is not None and images is not None and self.reconstruction_weight > 0:
            if reconstruction.shape != images.shape:
                raise ValueError(f"margin loss: reconstruction {tuple(reconstruction.shape)} does not match the images {tuple(images.shape)}")
            sse = (reconstruction - images).square().flatten(1).sum(dim=1).mean()  # summed over pixels, as in the paper
            loss = loss + self.reconstruction_weight * sse
        return loss


@register_loss("margin")
def margin(*, m_plus: float = 0.9, m_minus: float = 0.1, down_weight: float = 0.5, reconstruction_weight: float = 0.0005) -> MarginLoss:
    """Capsule margin loss (Sabour et al. 2017) plus the weighted reconstruction error when given."""
    return MarginLoss(m_plus=m_plus, m_minus=m_minus, down_weight=down_weight, reconstruction_weight=reconstruction_weight)
