"""L1 and L2 weight penalties as terms of the loss (Tibshirani 1996 lasso; Hoerl & Kennard 1970 ridge).

Problem: a model with more features than the data supports fits noise with the irrelevant ones.
Idea: add l1 * sum|w| (whose constant-size pull drives useless weights to exactly zero: a
sparse model) and/or l2 * sum w^2 (whose pull shrinks in proportion to w, so weights get
small but stay non-zero) to the loss before backward. Biases and normalisation weights are
left out by default, as with weight decay.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.errors import UserError
from deepstrata.nn.no_decay import no_decay_names
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class WeightPenalty(Callback):
    """Adds l1 * ||w||_1 + l2 * ||w||_2^2 over the penalised weights to each training loss."""

    def __init__(self, *, l1: float = 0.0, l2: float = 0.0, include_bias_and_norm: bool = False):
        if l1 < 0 or l2 < 0 or (l1 == 0 and l2 == 0):
            raise UserError(f"weight_penalty needs l1 >= 0, l2 >= 0 and at least one > 0, got l1={l1}, l2={l2}")
        self.l1, self.l2, self.include_bias_and_norm = l1, l2, include_bias_and_norm
        self.params: list[torch.nn.Parameter] = []

    def setup(self, trainer: Any) -> None:
        model = trainer.task.model
        skip = set() if self.include_bias_and_norm else no_decay_names(model)
        self.params = [p for n, p in model.named_parameters() if p.requires_grad and n not in skip]

    def penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.params[0].device if self.params else "cpu")
        for p in self.params:
            if self.l1:
                total = total + self.l1 * p.abs().sum()
            if self.l2:
                total = total + self.l2 * p.pow(2).sum()
        return total

    def on_before_backward(self, trainer: Any, output: Any) -> None:
        output.loss = output.loss + self.penalty()


@register_callback("weight_penalty")
def weight_penalty(*, l1: float = 0.0, l2: float = 0.0, include_bias_and_norm: bool = False) -> WeightPenalty:
    """Add an L1 (sparsity) and/or L2 (shrinkage) penalty on the weights to the training loss."""
    return WeightPenalty(l1=l1, l2=l2, include_bias_and_norm=include_bias_and_norm)
