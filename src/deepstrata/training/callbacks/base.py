"""Callbacks: optional behaviour that plugs into fixed points of the training loop.

Problem: a Trainer that grows a flag for every feature (checkpoints, early stopping, EMA,
logging, progress bars) becomes unreadable and untestable.
Idea: the loop calls named hooks at fixed points; each feature is a callback that overrides
the hooks it needs and acts through `trainer.state`. A callback that keeps state implements
`state_dict`/`load_state_dict` so resuming restores it. (Lightning's callbacks, smaller core.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepstrata.tasks.base import StepOutput
    from deepstrata.training.trainer import Trainer


class Callback:
    """Base class: every hook is a no-op. Hooks are called in the order callbacks are given."""

    # Validation metrics this callback adds to `trainer.state.val_metrics` itself (in
    # on_validation_end), so a monitor may name them although the task does not log them.
    adds_validation_metrics: tuple[str, ...] = ()

    def setup(self, trainer: Trainer) -> None:
        """Validate against the whole setup before step 1; raise UserError on a bad setting."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer) -> None: ...
    def on_train_batch_start(self, trainer: Trainer, batch: Any) -> None: ...
    def on_before_backward(self, trainer: Trainer, output: StepOutput) -> None:
        """May replace `output.loss` (a penalty term) before gradients are computed."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """Gradients of a whole (accumulated) step are ready and at their true scale."""

    def on_before_optimizer_step(self, trainer: Trainer) -> None:
        """Last chance to change gradients (clipping) or veto the step (`state.skip_step`)."""

    def on_train_batch_end(self, trainer: Trainer, output: StepOutput) -> None: ...
    def on_validation_start(self, trainer: Trainer) -> None: ...
    def on_validation_end(self, trainer: Trainer) -> None: ...
    def on_test_start(self, trainer: Trainer) -> None: ...
    def on_test_end(self, trainer: Trainer) -> None: ...
    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """A metrics record: {"scope": "step"|"epoch"|"test", "step": .., "epoch": .., "<split>/<name>": ..}."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_monitor(trainer: Trainer, monitor: str, *, who: str, setting: str) -> None:
    """Before step 1: fail when `monitor` is not a name validation will log (with the closest one)."""
    from deepstrata.errors import UserError, did_you_mean

    names = trainer.validation_metric_names()
    if names and monitor not in names:
        raise UserError(f"{who} monitors '{monitor}'{did_you_mean(monitor, names)}; validation logs {', '.join(names)}: set {setting} to one of them")


def monitored_value(trainer: Trainer, monitor: str, *, who: str, setting: str) -> float | None:
    """The validation metric `monitor` after a fit-stage validation, or None outside fit.

    `who` names the component in the error ("checkpoint", "early_stopping", ...) and `setting`
    the recipe key that chooses the metric, so a missing metric tells the user what to change.
    """
    from deepstrata.errors import UserError

    if trainer.state.stage != "fit":
        return None
    value = trainer.state.val_metrics.get(monitor)
    if value is None:
        raise UserError(
            f"{who} monitors '{monitor}', which is not among the validation metrics "
            f"({', '.join(sorted(trainer.state.val_metrics))}); set {setting} to one of them"
        )
    return value
