"""The callback base module: the monitored-metric lookup that checkpoint, early_stopping and reduce_on_plateau share."""

from __future__ import annotations

import pytest


def test_a_missing_monitored_metric_names_the_component_and_the_setting_to_change() -> None:
    """checkpoint, early_stopping and reduce_on_plateau share one lookup: outside fit it yields
    nothing, and a metric that validation did not produce is an error saying what to set."""
    from types import SimpleNamespace

    from deepstrata.errors import UserError
    from deepstrata.training.callbacks.base import monitored_value

    trainer = SimpleNamespace(state=SimpleNamespace(stage="fit", val_metrics={"val/loss": 0.5, "val/accuracy": 0.9}))
    assert monitored_value(trainer, "val/loss", who="checkpoint", setting="trainer.monitor") == 0.5
    with pytest.raises(UserError, match=r"checkpoint monitors 'val/f1', which is not among the validation metrics \(val/accuracy, val/loss\); set trainer.monitor to one of them"):
        monitored_value(trainer, "val/f1", who="checkpoint", setting="trainer.monitor")
    trainer.state.stage = "validate"
    assert monitored_value(trainer, "val/f1", who="checkpoint", setting="trainer.monitor") is None
