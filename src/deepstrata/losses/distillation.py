"""Knowledge distillation: train a small student on a large teacher's softened predictions.

Problem: hard labels say only which class is right, not that a "7" resembles a "1" more than an
"8"; a small model trained on them learns less than it could. Idea: add to the usual
cross-entropy a KL term between teacher and student softmaxes at temperature T, scaled by T^2 so
its gradient keeps its size as T changes (Hinton, Vinyals & Dean 2015, "Distilling the
Knowledge in a Neural Network").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.losses._checks import check_logits_labels, check_same_shape
from deepstrata.registry import register_loss


class DistillationLoss(nn.Module):
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    Fits model compression. The soft term's logit gradient is (softmax(s/T) - softmax(t/T)) * T,
    well behaved and rich in "dark knowledge" at T of 2-8; at very high T it approaches matching
    logits (mean-subtracted). The hard term anchors the student to the truth where the teacher errs.
    """

    def __init__(self, *, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"distillation: temperature must be positive, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"distillation: alpha must lie in [0, 1], got {alpha}")
        self.temperature = temperature
        self.alpha = alpha

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        check_logits_labels("distillation", student_logits, target)
        check_same_shape("distillation", student_logits, teacher_logits, ("student logits", "teacher logits"))
        t = self.temperature
        log_s = F.log_softmax(student_logits / t, dim=1)
        log_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
        soft = (log_t.exp() * (log_t - log_s)).sum(dim=1).mean() * t * t
        hard = F.cross_entropy(student_logits, target)
        return self.alpha * soft + (1 - self.alpha) * hard


@register_loss("distillation")
def distillation(*, temperature: float = 4.0, alpha: float = 0.9) -> DistillationLoss:
    """Knowledge distillation: T^2-scaled KL to the teacher's softened outputs plus hard-label CE."""
    return DistillationLoss(temperature=temperature, alpha=alpha)
