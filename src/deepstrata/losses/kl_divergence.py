"""KL divergence: how far the model's distribution is from a target distribution.

Problem: some targets are distributions, not labels (a teacher's soft predictions, annotator
votes, smoothed labels), and the loss should be zero exactly when the model matches them.
Idea: KL(q || p) = sum q (log q - log p) with p = softmax(logits); it differs from soft-target
cross-entropy only by q's entropy, a constant, so the gradient is the same, softmax(z) - q
(Kullback & Leibler 1951).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.losses._checks import check_same_shape
from deepstrata.registry import register_loss


class KLDivergence(nn.Module):
    """Batch-mean KL(target || softmax(logits)) for logits (N, K) and target probabilities (N, K).

    Fits distillation, soft labels and distribution matching. Well behaved: the logit gradient
    softmax(z) - q is bounded; 0 * log 0 is taken as 0 so one-hot targets are fine. Note the
    direction: KL(q || p) is mass-covering (p must not miss where q has mass).
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_same_shape("kl_divergence", logits, target, ("logits", "target"))
        logp = F.log_softmax(logits, dim=1)
        q = target.to(logits.dtype)
        plogq = torch.where(q > 0, q * torch.log(q.clamp_min(torch.finfo(q.dtype).tiny)), torch.zeros_like(q))
        return (plogq - q * logp).sum(dim=1).mean()


@register_loss("kl_divergence")
def kl_divergence() -> KLDivergence:
    """KL(target distribution || softmax(logits)), batch mean; for soft targets and distillation."""
    return KLDivergence()
