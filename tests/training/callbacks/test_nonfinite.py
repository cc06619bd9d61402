"""Gradient tools: the non-finite guard, clipping by norm and by value, per-layer gradient norms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.training.engine_helpers import make_data, make_loader, tiny
from torch import nn

from deepstrata.losses.cross_entropy import cross_entropy
from deepstrata.tasks.classification import ClassificationTask
from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.checkpoint import Checkpoint
from deepstrata.training.callbacks.grad_clip import GradientClipping
from deepstrata.training.callbacks.grad_norms import GradNormLogger
from deepstrata.training.callbacks.nonfinite import NonFiniteError, NonFiniteGuard
from deepstrata.training.trainer import Trainer


class PoisonAt(Callback):
    """Makes one parameter's gradient NaN at one optimizer step, like an overflow in one layer."""

    def __init__(self, step: int, name: str):
        self.step, self.name = step, name

    def on_after_backward(self, trainer) -> None:  # runs before the guard: listed first
        if trainer.state.global_step + 1 == self.step:
            dict(trainer.task.model.named_parameters())[self.name].grad[0, 0] = float("nan")


class Recorder(Callback):
    def __init__(self) -> None:
        self.records: list[dict] = []
        self.grads: list[list[torch.Tensor]] = []

    def on_log(self, trainer, record) -> None:
        self.records.append(record)

    def on_before_optimizer_step(self, trainer) -> None:  # after clipping (listed after it)
        self.grads.append([p.grad.clone() for p in trainer.task.model.parameters()])


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


def test_clip_by_norm_caps_the_global_norm_and_keeps_the_direction() -> None:
    task, loader, _ = tiny(0)
    raw, clipped = Recorder(), Recorder()
    trainer = Trainer(max_epochs=1, max_steps=1, callbacks=[raw, GradientClipping(max_norm=0.05), clipped])
    trainer.fit(task, loader, optimizer=torch.optim.SGD(task.parameters(), lr=0.0))
    before, after = torch.cat([g.flatten() for g in raw.grads[0]]), torch.cat([g.flatten() for g in clipped.grads[0]])
    assert before.norm() > 0.05  # so the clip had something to do
    assert after.norm() == pytest.approx(0.05, rel=1e-4)
    torch.testing.assert_close(after / after.norm(), before / before.norm())


def test_clip_by_value_bounds_every_component() -> None:
    task, loader, _ = tiny(0)
    raw, clipped = Recorder(), Recorder()
    trainer = Trainer(max_epochs=1, max_steps=1, callbacks=[raw, GradientClipping(value=0.01), clipped])
    trainer.fit(task, loader, optimizer=torch.optim.SGD(task.parameters(), lr=0.0))
    before, after = torch.cat([g.flatten() for g in raw.grads[0]]), torch.cat([g.flatten() for g in clipped.grads[0]])
    assert before.abs().max() > 0.01 and after.abs().max() <= 0.01
    torch.testing.assert_close(after, before.clamp(-0.01, 0.01))


def test_grad_norm_logging_shows_vanishing_gradients_in_a_deep_sigmoid_net() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(10, 10), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(10, 3))
    task = ClassificationTask(model, cross_entropy(), {})
    rec = Recorder()
    trainer = Trainer(max_epochs=1, max_steps=1, callbacks=[GradNormLogger(every_n_steps=1), rec])
    trainer.fit(task, make_loader(make_data(64), 64), optimizer=torch.optim.SGD(task.parameters(), lr=0.0))
    norms = next(r for r in rec.records if r["scope"] == "grad_norm")
    first, last = norms["grad_norm/0.weight"], norms["grad_norm/22.weight"]
    assert first < last * 1e-4  # sigmoid' <= 1/4 per layer: the first layer hardly learns
    assert norms["grad_norm/total"] >= last
