"""Gradient clipping by global norm or by value (Pascanu et al. 2013, arXiv:1211.5063).

Problem: in deep or recurrent networks a rare batch produces a gradient orders of magnitude
larger than usual, and one such step throws the weights far out of the good region.
Idea: just before the optimizer step, rescale the gradient so its global L2 norm is at most
`max_norm` (the direction is kept), or clamp each component to [-value, value].
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class GradientClipping(Callback):
    """Clips after every callback has seen the raw gradients (on_before_optimizer_step)."""

    def __init__(self, *, max_norm: float | None = None, value: float | None = None):
        if max_norm is None and value is None:
            raise UserError("grad_clip needs max_norm or value (or both)")
        self.max_norm, self.value = max_norm, value

    def on_before_optimizer_step(self, trainer: Any) -> None:
        params = [p for p in trainer.task.model.parameters() if p.grad is not None]
        if self.value is not None:
            torch.nn.utils.clip_grad_value_(params, self.value)
        if self.max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm, foreach=True)


@register_callback("grad_clip")
def grad_clip(*, max_norm: float | None = None, value: float | None = None) -> GradientClipping:
    """Clip gradients to a global L2 norm (max_norm) and/or elementwise to [-value, value]."""
    return GradientClipping(max_norm=max_norm, value=value)
