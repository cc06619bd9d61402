"""Non-finite guard: stop (or skip the step) the moment a loss or gradient becomes NaN or Inf.

Problem: one NaN gradient poisons every weight in a single optimizer step; the run then goes on
for hours producing NaNs, and the checkpoint written afterwards overwrites the last good one.
Idea: after backward, check the loss and the global gradient norm (one fused reduction, one
sync); on a non-finite value either stop with a message that names the step and the first
parameter whose gradient is non-finite (nothing is written, so checkpoints/last.pt stays the
last good state) or veto just this optimizer step.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from deepstrata.errors import DeepstrataError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class NonFiniteError(DeepstrataError):
    """Training produced a NaN/Inf loss or gradient and the policy is to stop."""

    exit_code = 3


class NonFiniteGuard(Callback):
    """Checks loss and gradients every optimizer step; `policy` is "stop" or "skip"."""

    def __init__(self, *, policy: Literal["stop", "skip"] = "stop"):
        self.policy = policy
        self.skipped = 0

    def on_after_backward(self, trainer: Any) -> None:
        params = [(n, p) for n, p in trainer.task.model.named_parameters() if p.grad is not None]
        loss = trainer.output.loss.detach().float()
        if params:
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for _, p in params])).float())
            check = loss + total
        else:
            check = loss
        if bool(torch.isfinite(check)):
            return
        grads_ok = trainer.precision.handles_overflow  # an fp16 scaler skips overflowing steps itself
        if grads_ok and bool(torch.isfinite(loss)):
            return
        bad = next((n for n, p in params if not bool(torch.isfinite(p.grad).all())), None)
        step = trainer.state.global_step + 1
        what = f"loss {float(loss)}" if not bool(torch.isfinite(loss)) else "loss is finite"
        where = f"first parameter with a non-finite gradient: '{bad}'" if bad else "all gradients are finite"
        if self.policy == "skip":
            self.skipped += 1
            trainer.state.skip_step = True
            trainer.log({"scope": "event", "train/skipped_nonfinite_steps": self.skipped, "event": f"skipped step {step}: {what}; {where}"})
            return
        raise NonFiniteError(
            f"non-finite values at optimizer step {step} (epoch {trainer.state.epoch + 1}): {what}; {where}. "
            "Training stopped before the step, so checkpoints/last.pt is the last good state. Lower the LR, "
            "set trainer.gradient_clip_norm, or set trainer.nonfinite=skip to skip such steps."
        )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))


@register_callback("nonfinite_guard")
def nonfinite_guard(*, policy: Literal["stop", "skip"] = "stop") -> NonFiniteGuard:
    """Stop (default) or skip the step when the loss or a gradient is NaN/Inf, naming the parameter."""
    return NonFiniteGuard(policy=policy)
