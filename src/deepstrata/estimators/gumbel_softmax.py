"""Straight-through Gumbel-softmax: a low-variance (biased) gradient for discrete samples.

Problem: a categorical sample is a step function of its logits, so backpropagation gives zero
gradient, and REINFORCE's unbiased estimate is noisy. Idea: argmax(logits + Gumbel noise) is an
exact categorical sample (the Gumbel-max trick); use that one-hot in the forward pass but, in the
backward pass, the gradient of its relaxation softmax((logits + g) / tau) (Jang, Gu & Poole 2017,
"Categorical Reparameterization with Gumbel-Softmax"; Maddison et al. 2017; Bengio et al. 2013
for straight-through).
"""

from __future__ import annotations

import torch


def sample_gumbel(shape: torch.Size | tuple[int, ...], *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard Gumbel noise -log(-log U), U ~ Uniform(0, 1), clamped away from 0 and 1."""
    tiny = torch.finfo(dtype).tiny
    u = torch.rand(shape, generator=generator, dtype=dtype).clamp(tiny, 1 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(u))


def gumbel_softmax(
    logits: torch.Tensor, *, tau: float = 1.0, hard: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A (straight-through) Gumbel-softmax sample over the last axis of logits (..., K) -> (..., K).

    hard=True: the value is an exact one-hot categorical sample; the gradient is the relaxed
    softmax's (biased, low variance). hard=False: the relaxed sample itself (a point in the simplex).
    """
    if tau <= 0:
        raise ValueError(f"gumbel_softmax: tau must be positive, got {tau}")
    y_soft = torch.softmax((logits + sample_gumbel(logits.shape, generator=generator, dtype=logits.dtype).to(logits.device)) / tau, dim=-1)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim=-1, keepdim=True)
    y_hard = torch.zeros_like(y_soft).scatter_(-1, index, 1.0)
    return y_hard - y_soft.detach() + y_soft  # value y_hard, gradient of y_soft
