"""Lottery tickets: the recipe's seed recreates exactly the weights a run started from, and
`strata prune --rewind` retrains the trained weights' mask from them (or from a random re-initialisation)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.compression.lottery import initial_state, random_state, replayed_state, round_sparsity, ticket
from deepstrata.compression.pruning import magnitude_masks, prunable, sparsity_of
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.training.callbacks.base import Callback

RECIPE = {
    "name": "lottery_cnn",
    "seed": 3,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "model": {"name": "small_cnn", "widths": [16, 32]},
    "optimizer": {"name": "adamw", "lr": 0.005, "weight_decay": 0.01},
    "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1, "test_weights": "last"},
}


class _FirstStepWeights(Callback):
    """The weights the first training batch sees: what training really started from."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_batch_start(self, trainer: Any, batch: Any) -> None:
        if self.state is None:
            self.state = {k: v.detach().clone() for k, v in trainer.task.model.state_dict().items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, torch.Tensor]]:
    spy = _FirstStepWeights()
    result = api.train({**RECIPE, "output_dir": str(tmp_path_factory.mktemp("lottery"))}, extra_callbacks=[spy])
    assert spy.state is not None
    return Run.open(result.run_dir), spy.state


def test_the_seed_recreates_the_initial_weights_exactly(trained: tuple[Run, dict[str, torch.Tensor]]) -> None:
    run, started = trained
    again = initial_state(run)
    assert set(again) == set(started)
    for name, tensor in started.items():
        assert tensor.dtype == again[name].dtype and torch.equal(tensor, again[name]), name  # bit for bit
    weight_names = list(prunable(run.model()))
    trained_weights = run.model().state_dict()
    assert not any(torch.equal(trained_weights[k], again[k]) for k in weight_names)  # and they are not the trained ones
    other = random_state(run)
    assert not any(torch.equal(other[k], again[k]) for k in weight_names)  # the control is another draw
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # the global generators are left as they were
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    initial_state(run)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_replaying_the_training_reaches_the_parents_own_weights(trained: tuple[Run, dict[str, torch.Tensor]]) -> None:
    run, started = trained
    last_step = run.history[-1]["step"]
    final = run.model().state_dict()
    replayed = replayed_state(run, last_step)
    assert all(torch.equal(final[k], replayed[k]) for k in final)  # the replay is exact: bit for bit at the end
    early = replayed_state(run, 3)
    assert not any(torch.equal(early[k], started[k]) or torch.equal(early[k], final[k]) for k in prunable(run.model()))
    with pytest.raises(UserError, match="fewer than"):
        replayed_state(run, last_step + 1)


def test_iterative_rounds_remove_the_same_fraction_of_what_is_left() -> None:
    kept = [1 - round_sparsity(r, 3, 0.875) for r in range(4)]
    assert kept == pytest.approx([1.0, 0.5, 0.25, 0.125])  # halved each round, 87.5% after the third
    assert round_sparsity(1, 1, 0.9) == 0.9


def test_the_ticket_is_the_initial_weights_under_the_trained_mask(trained: tuple[Run, dict[str, torch.Tensor]]) -> None:
    run, started = trained
    masks = magnitude_masks(run.model(), 0.8)
    t = ticket(initial_state(run), masks)
    for name, tensor in t.items():
        keep = masks.get(name)
        if keep is None:
            assert torch.equal(tensor, started[name]), name
        else:
            assert torch.equal(tensor[keep], started[name][keep]) and bool((tensor[~keep] == 0).all()), name


@pytest.mark.e2e
def test_iterative_rewinding_ends_at_the_sparsity(trained: tuple[Run, dict[str, torch.Tensor]]) -> None:
    run, _ = trained
    result = api.apply("prune", run.path, sparsity=0.8, rewind="init", rewind_epochs=1, rewind_rounds=2)
    model = Run.open(result.run_dir).model()
    weights = sum(p.numel() for p in prunable(model).values())
    assert result.metrics["prune/sparsity"] == sparsity_of(model) == round(0.8 * weights) / weights
    assert Run.open(result.run_dir).spec["pruning"]["rewind_rounds"] == 2
    with pytest.raises(UserError, match="--rewind-rounds repeats"):
        api.apply("prune", run.path, rewind_rounds=2)


@pytest.mark.e2e
def test_prune_rewind_retrains_the_mask_of_the_trained_weights(trained: tuple[Run, dict[str, torch.Tensor]]) -> None:
    run, started = trained
    masks = magnitude_masks(run.model(), 0.8)
    for rewind, step in (("init", 0), ("random", 0), ("init", 3)):
        result = api.apply("prune", run.path, sparsity=0.8, rewind=rewind, rewind_epochs=1, rewind_step=step)
        derived = Run.open(result.run_dir)
        model = derived.model()
        assert result.metrics["prune/sparsity"] == sparsity_of(model)
        for name, p in prunable(model).items():
            assert torch.equal(p != 0, masks[name]), (rewind, name)  # zero exactly where the trained weights' mask prunes
        assert derived.spec["pruning"]["rewind"] == rewind and derived.spec["pruning"]["rewind_epochs"] == 1 and derived.spec["pruning"]["rewind_step"] == step
        assert derived.evaluate("test")["test/accuracy"] == pytest.approx(result.metrics["test/accuracy"], abs=1e-6)


def test_a_run_that_started_from_other_weights_cannot_be_rewound(trained: tuple[Run, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    run, _ = trained
    cfg = {**RECIPE, "trainer": {**RECIPE["trainer"], "max_epochs": 1}, "output_dir": str(tmp_path)}
    cfg["callbacks"] = [{"name": "pretrained", "source": str(run.path), "keep_head": True}]
    child = Run.open(api.train(cfg).run_dir)
    with pytest.raises(UserError, match="cannot be recreated"):
        initial_state(child)
    with pytest.raises(UserError, match="cannot be recreated"):
        api.apply("prune", child.path, rewind="init")
    with pytest.raises(UserError, match="use it with --rewind init"):
        api.apply("prune", run.path, rewind="random", rewind_step=5)
