"""Learning-rate schedules by name, stepped once per optimizer step.

Problem: a step size large enough to make progress early is too large to settle into a
minimum late; a large step at the very start can also blow up freshly initialised networks.
Idea: warm up linearly from a small LR, then decay (cosine, linear, step or exponential)
towards a floor. (Goyal et al. 2017 for warm-up; Loshchilov & Hutter 2017 for cosine.)
Cyclical and one-cycle schedules live in `optim/cyclical.py`, reduce-on-plateau in
`optim/plateau.py`.
"""

from __future__ import annotations

import math

import torch

from deepstrata.registry import register_scheduler


def _warmup_then(decay, warmup_steps: int, total: int, min_lr_ratio: float):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * decay(progress)

    return factor


@register_scheduler("cosine")
def cosine(
    optimizer: torch.optim.Optimizer, num_training_steps: int, *, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to min_lr_ratio x the base LR at the last step."""
    decay = lambda p: 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then(decay, warmup_steps, num_training_steps, min_lr_ratio))


@register_scheduler("linear")
def linear(
    optimizer: torch.optim.Optimizer, num_training_steps: int, *, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then linear decay to min_lr_ratio x the base LR at the last step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then(lambda p: 1 - p, warmup_steps, num_training_steps, min_lr_ratio))


@register_scheduler("constant")
def constant(optimizer: torch.optim.Optimizer, num_training_steps: int, *, warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then the base LR unchanged."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then(lambda p: 1.0, warmup_steps, num_training_steps, 1.0))


@register_scheduler("step")
def step(
    optimizer: torch.optim.Optimizer, num_training_steps: int, *, step_size: int = 1000, gamma: float = 0.1, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then the LR times gamma every step_size optimizer steps (the classic ResNet schedule)."""

    def factor(s: int) -> float:
        if warmup_steps and s < warmup_steps:
            return (s + 1) / warmup_steps
        return gamma ** ((s - warmup_steps) // step_size)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@register_scheduler("exponential")
def exponential(
    optimizer: torch.optim.Optimizer, num_training_steps: int, *, gamma: float = 0.999, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then the LR times gamma after every optimizer step."""

    def factor(s: int) -> float:
        if warmup_steps and s < warmup_steps:
            return (s + 1) / warmup_steps
        return gamma ** (s - warmup_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
