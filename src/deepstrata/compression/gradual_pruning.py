"""Gradual magnitude pruning during training, on Zhu & Gupta's cubic sparsity schedule.

Problem: cutting 90% of a trained network's weights at once removes more than a short
fine-tune can win back (2.3 points on MNIST's LeNet-5 and ResNet, `benchmarks/pruning.py`).
Idea: prune a little at a time while training goes on, so the remaining weights adapt before the
next cut (Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for
model compression"). Every `frequency` steps (dt) from step t0, n times, the masks are recomputed
by magnitude at s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3; a weight pruned once stays
pruned, and in between and after the last cut the zeros are held exactly as `keep_sparsity`
holds them (this callback is a `KeepSparsity` whose masks it replaces). t0 and t0 + n dt are
given as fractions of the run's optimizer steps (`start`, `end`), so one setting fits any recipe
length; the last cut lands at or before `end`, and from then on the sparsity is exactly
`final_sparsity` (of the weights of 2+ dimensions, `compression/pruning.py`).

With `trainer.test_weights: best`, an epoch validated before the last cut may be the best one
and its weights less sparse: end the schedule before the last epoch and choose `last`, as
`strata prune --schedule gradual` does.
"""

from __future__ import annotations

from typing import Any

from deepstrata.compression.pruning import Scope, cubic_sparsity, is_pruning_step, magnitude_masks, sparsity_of
from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.keep_sparsity import KeepSparsity


def total_optimizer_steps(trainer: Any) -> int:
    """The optimizer steps the fit will take: epochs x ceil(batches / accumulation), capped by max_steps."""
    batches = len(trainer.train_loader)
    per_epoch = -(-batches // trainer.accumulate_grad_batches)
    total = per_epoch * trainer.max_epochs
    return min(total, trainer.max_steps) if trainer.max_steps is not None else total


DEFAULT_CUTS = 30  # cuts over the schedule when `frequency` is not given


class GradualPruning(KeepSparsity):
    """Masks recomputed on the cubic schedule between `start` and `end` (fractions of training); zeros held throughout."""

    def __init__(self, *, final_sparsity: float, initial_sparsity: float, start: float, end: float, frequency: int | None, scope: Scope) -> None:
        super().__init__()
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.start, self.end, self.frequency, self.scope = start, end, frequency, scope
        self.start_step = self.num_prunes = 0  # t0 and n (and dt when not given): fixed in `setup` from the run's length
        self.every = frequency or 0

    def setup(self, trainer: Any) -> None:
        total = total_optimizer_steps(trainer)
        self.start_step = round(self.start * total)
        span = round(self.end * total) - self.start_step
        self.every = self.frequency or max(1, span // DEFAULT_CUTS)
        self.num_prunes = span // self.every
        if self.num_prunes < 1:
            raise UserError(
                f"gradual_pruning: the schedule spans {span} of the run's {total} optimizer steps (start={self.start}, end={self.end}), "
                f"fewer than one pruning interval (frequency={self.every}); lower frequency to at most {max(span, 1)} or widen start..end"
            )

    def sparsity_at(self, step: int) -> float:
        """The schedule's target sparsity at optimizer step `step`."""
        return cubic_sparsity(step, initial=self.initial_sparsity, final=self.final_sparsity, start_step=self.start_step, frequency=self.every, num_prunes=self.num_prunes)

    def on_fit_start(self, trainer: Any) -> None:
        super().on_fit_start(trainer)
        if trainer.state.global_step == 0:  # a resumed run brought its masks; a fresh one may prune at t0 = 0
            self._prune_if_due(trainer)

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        super().on_train_batch_end(trainer, output)  # the zeros held after the step
        self._prune_if_due(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        trainer.state.train_metrics = {**trainer.state.train_metrics, "train/sparsity": sparsity_of(trainer.task.model)}

    def _prune_if_due(self, trainer: Any) -> None:
        step = trainer.state.global_step
        if not is_pruning_step(step, start_step=self.start_step, frequency=self.every, num_prunes=self.num_prunes):
            return
        target = self.sparsity_at(step)
        if target <= 0.0:
            return
        model = trainer.task.model
        masks = magnitude_masks(model, target, scope=self.scope, previous=self.masks or None)
        self.masks = {name: keep.cpu() for name, keep in masks.items()}
        super().on_fit_start(trainer)  # KeepSparsity's hold, now on the new masks
        super().on_train_batch_end(trainer, None)  # and the newly pruned weights zeroed


@register_callback("gradual_pruning")
def gradual_pruning(
    *, final_sparsity: float = 0.9, initial_sparsity: float = 0.0, start: float = 0.0, end: float = 0.7, frequency: int | None = None, scope: Scope = "global"
) -> GradualPruning:
    """Prune by magnitude while training, on Zhu & Gupta's cubic schedule from `start` to `end` (fractions of the run's steps).

    frequency: optimizer steps between two cuts (dt); left out, the span start..end is cut 30 times.
    """
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise UserError(f"gradual_pruning: need 0 <= initial_sparsity <= final_sparsity < 1, got {initial_sparsity} and {final_sparsity}")
    if not 0.0 <= start < end <= 1.0:
        raise UserError(f"gradual_pruning: need 0 <= start < end <= 1 (fractions of the run's optimizer steps), got start={start}, end={end}")
    if frequency is not None and frequency < 1:
        raise UserError(f"gradual_pruning: frequency (optimizer steps between two cuts) must be >= 1, got {frequency}")
    return GradualPruning(final_sparsity=final_sparsity, initial_sparsity=initial_sparsity, start=start, end=end, frequency=frequency, scope=scope)
