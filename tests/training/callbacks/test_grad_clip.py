"""Gradient clipping by global norm (the direction is kept) and by value (every component bounded)."""

from __future__ import annotations

import pytest
import torch
from tests.training.engine_helpers import Recorder, tiny

from deepstrata.training.callbacks.grad_clip import GradientClipping
from deepstrata.training.trainer import Trainer


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
