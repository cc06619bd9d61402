"""Per-layer gradient norms: the instrument that shows vanishing and exploding gradients.

Problem: a deep network that does not learn may have gradients that shrink (or grow)
geometrically with depth (Hochreiter 1991; Glorot & Bengio 2010), and the loss curve alone
cannot tell that apart from a bad learning rate.
Idea: every `every_n_steps` optimizer steps, log the L2 norm of each parameter's gradient and
the global norm, before any clipping, as `grad_norm/<parameter>`; a plot by depth shows at once
where the signal dies or explodes.
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class GradNormLogger(Callback):
    """Logs {"scope": "grad_norm", "grad_norm/total": .., "grad_norm/<name>": ..}."""

    def __init__(self, *, every_n_steps: int = 50):
        self.every_n_steps = every_n_steps

    def on_after_backward(self, trainer: Any) -> None:
        if (trainer.state.global_step + 1) % self.every_n_steps:
            return
        named = [(n, p.grad) for n, p in trainer.task.model.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([g for _, g in named])).float()
        record: dict[str, Any] = {"scope": "grad_norm", "grad_norm/total": float(torch.linalg.vector_norm(norms))}
        record.update({f"grad_norm/{n}": float(v) for (n, _), v in zip(named, norms.tolist())})
        record["step"] = trainer.state.global_step + 1  # the step these gradients are about to make
        trainer.log(record)


@register_callback("grad_norms")
def grad_norms(*, every_n_steps: int = 50) -> GradNormLogger:
    """Log each parameter's gradient L2 norm (and the global norm) every n optimizer steps."""
    return GradNormLogger(every_n_steps=max(1, every_n_steps))
