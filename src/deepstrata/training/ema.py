"""Exponential moving averages of weights, and the moving-average target network.

Problem: the weights at the last SGD step are one noisy sample around the minimum; an
evaluation on them is noisier and often worse than on their recent average. Self-training
methods also need a slowly moving "teacher" copy of the network that is not trained directly.
Idea: keep shadow weights updated as shadow <- decay * shadow + (1 - decay) * weights after
every step (Polyak & Juditsky 1992); a target network is exactly such a shadow, used in the
forward pass without gradients (mean teacher, Tarvainen & Valpola 2017, arXiv:1703.01780;
BYOL, Grill et al. 2020, arXiv:2006.07733).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ExponentialMovingAverage:
    """Shadow copies of a model's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, *, decay: float = 0.999, warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """With warm-up the average starts short (decay (1+n)/(10+n)) so early weights fade fast."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.num_updates += 1
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                shadow.copy_(value)  # counters such as BatchNorm's num_batches_tracked

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


class TargetNetwork(nn.Module):
    """A copy of `online` that only moves as its exponential moving average; no gradient reaches it.

    >>> target = TargetNetwork(student, momentum=0.99)
    >>> loss = consistency(student(x1), target(x2)); loss.backward(); opt.step(); target.update(student)
    """

    def __init__(self, online: nn.Module, *, momentum: float = 0.996):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"TargetNetwork momentum must lie in [0, 1], got {momentum}")
        self.momentum = momentum
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        """target <- m * target + (1 - m) * online, parameter by parameter; buffers are copied."""
        for t, o in zip(self.target.parameters(), online.parameters()):
            t.mul_(self.momentum).add_(o.detach(), alpha=1 - self.momentum)
        for t, o in zip(self.target.buffers(), online.buffers()):
            t.copy_(o)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.target(*args, **kwargs)
