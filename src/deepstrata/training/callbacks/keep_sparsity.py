"""Keeping pruned weights at zero while a pruned model trains.

Problem: fine-tuning a pruned network with an ordinary optimizer regrows every pruned weight
after one step (gradients, momentum and weight decay all touch them), so the sparsity that
pruning bought is gone.
Idea: when training starts (after the `pretrained` callback copied the pruned weights in),
record which entries of each weight matrix are exactly zero; from then on, zero their gradients
before every optimizer step, and zero the entries again after it (momentum or weight decay can
still move them). The mask is part of the checkpoint, so a resumed run keeps the same mask.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class KeepSparsity(Callback):
    """Weights (tensors of 2 or more dimensions) that are zero at the start stay zero."""

    def __init__(self) -> None:
        self.masks: dict[str, torch.Tensor] = {}
        self._held: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (parameter, its mask on its device)

    def on_fit_start(self, trainer: Any) -> None:
        named = dict(trainer.task.model.named_parameters())
        if not self.masks:  # a fresh run; a resumed one brought its masks from the checkpoint
            self.masks = {n: p.detach() != 0 for n, p in named.items() if p.dim() > 1 and bool((p == 0).any())}
        self._held = [(named[n], m.to(named[n].device)) for n, m in self.masks.items() if n in named]

    def on_before_optimizer_step(self, trainer: Any) -> None:
        for p, keep in self._held:
            if p.grad is not None:
                p.grad.mul_(keep)

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        for p, keep in self._held:
            p.mul_(keep)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {k: v.cpu() for k, v in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = dict(state.get("masks", {}))


@register_callback("keep_sparsity")
def keep_sparsity() -> KeepSparsity:
    """Keep the weights that are zero when training starts at zero (fine-tuning a pruned model)."""
    return KeepSparsity()
