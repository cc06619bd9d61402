"""Gradual unfreezing: train the new head first, then unfreeze the body from the top down.

Problem: gradients from a randomly initialised head are large and noisy; sent straight into
a pretrained body they overwrite the very features that made it worth reusing
("catastrophic forgetting").
Idea: freeze the whole body at the start and train only the head; every `epochs_per_stage`
epochs unfreeze the next stage of the body, starting from the layers nearest the head
(the most task-specific) and ending with the first ones (the most general).
(Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification".)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback
from deepstrata.transfer.pretrained import head_keys


def body_stages(model: nn.Module, num_stages: int) -> list[list[nn.Parameter]]:
    """The body's parameters in `num_stages` consecutive groups, first layers first.

    Layers are the modules that own parameters directly, in registration order (the order
    of the forward pass for sequential backbones); the head (what `reset_head` replaces) is
    excluded.
    """
    head = {k.rsplit(".", 1)[0] for k in head_keys(model)}
    layers = [
        list(m.parameters(recurse=False))
        for name, m in model.named_modules()
        if name not in head and not any(name.startswith(h + ".") for h in head) and list(m.parameters(recurse=False))
    ]
    direct = [p for n, p in model.named_parameters() if "." not in n and n.split(".")[0] not in head]  # e.g. a cls token
    if direct:
        layers.insert(0, direct)
    if not layers:
        raise UserError(f"gradual_unfreezing: {type(model).__name__} has no body parameters outside its head")
    n = min(num_stages, len(layers))
    bounds = [round(i * len(layers) / n) for i in range(n + 1)]
    return [[p for layer in layers[a:b] for p in layer] for a, b in zip(bounds[:-1], bounds[1:])]


class GradualUnfreezing(Callback):
    """Epoch e trains the head plus the top e // epochs_per_stage body stages."""

    def __init__(self, *, num_stages: int, epochs_per_stage: int):
        if num_stages < 1 or epochs_per_stage < 1:
            raise UserError(f"gradual_unfreezing: num_stages and epochs_per_stage must be >= 1, got {num_stages} and {epochs_per_stage}")
        self.num_stages, self.epochs_per_stage = num_stages, epochs_per_stage
        self.stages: list[list[nn.Parameter]] = []

    def setup(self, trainer: Any) -> None:
        self.stages = body_stages(trainer.task.model, self.num_stages)
        self._apply(0)

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._apply(trainer.state.epoch)  # from the epoch count alone, so a resumed run agrees

    def unfrozen_stages(self, epoch: int) -> int:
        return min(len(self.stages), epoch // self.epochs_per_stage)

    def _apply(self, epoch: int) -> None:
        open_from = len(self.stages) - self.unfrozen_stages(epoch)
        for i, stage in enumerate(self.stages):
            for p in stage:
                p.requires_grad_(i >= open_from)


@register_callback("gradual_unfreezing")
def gradual_unfreezing(*, num_stages: int = 3, epochs_per_stage: int = 1) -> GradualUnfreezing:
    """Freeze the body, then unfreeze one stage per `epochs_per_stage` epochs from the top (ULMFiT)."""
    return GradualUnfreezing(num_stages=num_stages, epochs_per_stage=epochs_per_stage)
