"""The non-finite guard: stop naming the step and the parameter, or skip just the bad step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.training.engine_helpers import Recorder, tiny

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.checkpoint import Checkpoint
from deepstrata.training.callbacks.nonfinite import NonFiniteError, NonFiniteGuard
from deepstrata.training.trainer import Trainer


class PoisonAt(Callback):
    """Makes one parameter's gradient NaN at one optimizer step, like an overflow in one layer."""

    def __init__(self, step: int, name: str):
        self.step, self.name = step, name

    def on_after_backward(self, trainer) -> None:  # runs before the guard: listed first
        if trainer.state.global_step + 1 == self.step:
            dict(trainer.task.model.named_parameters())[self.name].grad[0, 0] = float("nan")


def test_nan_gradient_stops_naming_the_step_and_parameter_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    task, loader, val = tiny(0)
    ckpt = Checkpoint(tmp_path, monitor="val/loss", every_n_steps=2)
    trainer = Trainer(max_epochs=5, callbacks=[PoisonAt(7, "2.weight"), NonFiniteGuard(), ckpt])
    with pytest.raises(NonFiniteError, match=r"step 7 .*first parameter with a non-finite gradient: '2.weight'"):
        trainer.fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.1))
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["trainer"]["global_step"] == 6  # the last good state, written before the bad step
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    assert all(torch.isfinite(p).all() for p in task.parameters())  # the NaN never reached the weights


def test_skip_policy_skips_only_the_bad_step() -> None:
    task, loader, _ = tiny(0)
    rec = Recorder()
    trainer = Trainer(max_epochs=2, callbacks=[PoisonAt(3, "0.weight"), NonFiniteGuard(policy="skip"), rec])
    trainer.fit(task, loader, optimizer=torch.optim.SGD(task.parameters(), lr=0.1))
    assert all(torch.isfinite(p).all() for p in task.parameters())
    events = [r for r in rec.records if r.get("scope") == "event"]
    assert len(events) == 1 and "skipped step 3" in events[0]["event"] and "'0.weight'" in events[0]["event"]
    assert trainer.state.global_step == 12


def test_the_guard_is_a_default_callback_unless_the_recipe_turns_it_off(tiny_recipe: dict, tmp_path: Path) -> None:
    from deepstrata.config import load_recipe
    from deepstrata.training.default_callbacks import default_callbacks

    def guards(recipe: dict) -> list[NonFiniteGuard]:
        return [cb for cb in default_callbacks(load_recipe(recipe), tmp_path) if isinstance(cb, NonFiniteGuard)]

    assert [g.policy for g in guards(tiny_recipe)] == ["stop"]
    tiny_recipe["trainer"]["nonfinite"] = "skip"
    assert [g.policy for g in guards(tiny_recipe)] == ["skip"]
    tiny_recipe["trainer"]["nonfinite"] = "off"
    assert guards(tiny_recipe) == []
