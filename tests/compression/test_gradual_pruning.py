"""Gradual pruning: the cubic schedule equals Zhu & Gupta's formula, the callback cuts on it and ends at
exactly the final sparsity with every pruned weight still zero, and `strata prune --schedule gradual`
writes a sparse derived run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata import api
from deepstrata.compression.pruning import cubic_sparsity, is_pruning_step, magnitude_masks, prunable, sparsity_of
from deepstrata.transfer.sparse_weights import is_sparse
from deepstrata.errors import UserError
from deepstrata.registry import CALLBACKS, MODELS
from deepstrata.run.run import Run
from deepstrata.training.callbacks.base import Callback

RECIPE = {
    "name": "gradual_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "model": {"name": "small_cnn", "widths": [16, 32]},
    "optimizer": {"name": "adamw", "lr": 0.005, "weight_decay": 0.01},
    "trainer": {"max_epochs": 3, "progress": "off", "num_threads": 1},
}


@pytest.mark.parametrize(("si", "sf", "t0", "dt", "n"), [(0.0, 0.9, 0, 10, 5), (0.2, 0.8, 7, 3, 9), (0.5, 0.5, 2, 1, 4)])
def test_schedule_equals_the_formula_and_is_held_outside_it(si: float, sf: float, t0: int, dt: int, n: int) -> None:
    end = t0 + n * dt
    for t in range(end + 15):
        expected = si if t < t0 else sf if t > end else sf + (si - sf) * (1 - (t - t0) / (n * dt)) ** 3
        assert cubic_sparsity(t, initial=si, final=sf, start_step=t0, frequency=dt, num_prunes=n) == pytest.approx(expected, abs=1e-12)
    steps = [t for t in range(end + 15) if is_pruning_step(t, start_step=t0, frequency=dt, num_prunes=n)]
    assert steps == [t0 + j * dt for j in range(n + 1)]
    assert cubic_sparsity(end, initial=si, final=sf, start_step=t0, frequency=dt, num_prunes=n) == sf  # the last cut is exactly s_f
    # the paper's example point: a quarter of the way, 1 - 0.75^3 of the way to s_f
    assert cubic_sparsity(5, initial=0.0, final=0.9, start_step=0, frequency=5, num_prunes=4) == pytest.approx(0.9 * (1 - 0.75**3))


def test_a_weight_pruned_once_stays_pruned() -> None:
    torch.manual_seed(0)
    model = MODELS.get("lenet5")(num_classes=10)
    first = magnitude_masks(model, 0.5)
    with torch.no_grad():  # the pruned weights grow large: magnitude alone would bring them back
        for name, p in prunable(model).items():
            p[~first[name]] = 100.0
    second = magnitude_masks(model, 0.7, previous=first)
    assert all(not bool((second[n] & ~first[n]).any()) for n in first)
    plain = magnitude_masks(model, 0.7)
    assert any(bool((plain[n] & ~first[n]).any()) for n in first)  # without `previous` they would have come back


class _Spy(Callback):
    """Records the sparsity after every optimizer step, and which weights were ever zero."""

    def __init__(self) -> None:
        self.sparsity: list[float] = []
        self.ever_zero: dict[str, torch.Tensor] = {}
        self.regrown = False

    def on_train_batch_end(self, trainer: Any, output: Any) -> None:
        params = prunable(trainer.task.model)
        self.sparsity.append(sparsity_of(trainer.task.model))
        for name, p in params.items():
            zero = p.detach() == 0
            if name in self.ever_zero and bool((self.ever_zero[name] & ~zero).any()):
                self.regrown = True
            self.ever_zero[name] = self.ever_zero.get(name, zero) | zero


def test_the_callback_follows_the_schedule_and_ends_at_exactly_the_final_sparsity(tmp_path: Path) -> None:
    spy = _Spy()
    cut = {"name": "gradual_pruning", "final_sparsity": 0.8, "start": 0.1, "end": 0.6, "frequency": 5}
    result = api.train({**RECIPE, "callbacks": [cut], "trainer": {**RECIPE["trainer"], "test_weights": "last"}, "output_dir": str(tmp_path)}, extra_callbacks=[spy])
    total = len(spy.sparsity)
    t0, n = round(0.1 * total), (round(0.6 * total) - round(0.1 * total)) // 5
    model = Run.open(result.run_dir).model()
    weights = sum(p.numel() for p in prunable(model).values())
    assert sparsity_of(model) == round(0.8 * weights) / weights  # exactly the final sparsity, no more, no less
    for step, s in enumerate(spy.sparsity, start=1):  # after step t: the cut of the last pruning step <= t
        last_cut = max([t0 + j * 5 for j in range(n + 1) if t0 + j * 5 <= step], default=None)
        target = 0.0 if last_cut is None else cubic_sparsity(last_cut, initial=0.0, final=0.8, start_step=t0, frequency=5, num_prunes=n)
        assert s == round(target * weights) / weights, step
    assert not spy.regrown  # the zeros were held between the cuts and after the last
    assert [r["train/sparsity"] for r in Run.open(result.run_dir).history][-1] == sparsity_of(model)


def test_bad_settings_fail_before_training(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="start < end"):
        CALLBACKS.get("gradual_pruning")(start=0.5, end=0.5)
    with pytest.raises(UserError, match="initial_sparsity <= final_sparsity"):
        CALLBACKS.get("gradual_pruning")(initial_sparsity=0.5, final_sparsity=0.3)
    coarse = {"name": "gradual_pruning", "frequency": 100000}
    with pytest.raises(UserError, match="lower frequency"):
        api.train({**RECIPE, "callbacks": [coarse], "output_dir": str(tmp_path)})


@pytest.mark.e2e
def test_prune_schedule_gradual_writes_a_sparse_run_at_the_sparsity(tmp_path: Path) -> None:
    parent = api.train({**RECIPE, "output_dir": str(tmp_path / "runs")}).run_dir
    result = api.apply("prune", parent, sparsity=0.9, schedule="gradual", finetune_epochs=2, finetune_lr_scale=1.0)
    m = result.metrics
    derived = Run.open(result.run_dir)
    model = derived.model()
    weights = sum(p.numel() for p in prunable(model).values())
    assert m["prune/sparsity"] == sparsity_of(model) == round(0.9 * weights) / weights
    assert 0.0 < m["val/accuracy"] <= 1.0 and "test/accuracy_pruned" not in m
    assert derived.spec["pruning"]["schedule"] == "gradual" and derived.derived_from["args"]["schedule"] == "gradual"
    assert is_sparse(derived.path / "model.safetensors") and not is_sparse(Path(parent) / "model.safetensors")
    assert (derived.path / "model.safetensors").stat().st_size < 0.25 * (Path(parent) / "model.safetensors").stat().st_size
    assert derived.evaluate("test")["test/accuracy"] == pytest.approx(m["test/accuracy"], abs=1e-6)
    with pytest.raises(UserError, match="--rewind takes its mask"):
        api.apply("prune", parent, schedule="gradual", rewind="init")
