"""weight_init re-initialises Linear/Conv weights by scheme name in setup, before step 1."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from tests.training.engine_helpers import make_task, tiny
from torch import nn

from deepstrata.nn.init import init_weights
from deepstrata.training.callbacks.weight_init import weight_init
from deepstrata.training.trainer import Trainer


def _wide() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Conv2d(16, 32, 3))


def _std(weight: torch.Tensor) -> float:
    return float(weight.detach().std())


def _setup(model: nn.Module, **kwargs) -> nn.Module:
    weight_init(**kwargs).setup(SimpleNamespace(task=SimpleNamespace(model=model)))
    return model


def test_he_gives_variance_2_over_fan_in_and_zero_biases() -> None:
    model = _wide()
    default_std = _std(model[0].weight)  # torch's default: Var = 1 / (3 fan_in)
    assert default_std == pytest.approx(1 / math.sqrt(3 * 256), rel=0.05)
    _setup(model, scheme="he")
    assert _std(model[0].weight) == pytest.approx(math.sqrt(2 / 256), rel=0.05)  # sqrt(6) times wider
    assert _std(model[4].weight) == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.05)  # conv fan_in = 16 * 3 * 3
    assert all(not m.bias.detach().any() for m in (model[0], model[2], model[4]))


def test_normal_uses_std_orthogonal_preserves_norms_and_the_seed_decides_the_draw() -> None:
    assert _std(_setup(_wide(), scheme="normal", std=0.02)[2].weight) == pytest.approx(0.02, rel=0.05)
    w = _setup(_wide(), scheme="orthogonal", nonlinearity="linear")[0].weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(256), atol=1e-4, rtol=0)
    a, b, c = (_setup(_wide(), scheme="xavier_normal", seed=s)[0].weight for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_runs_in_setup_so_the_first_step_starts_from_the_new_weights() -> None:
    task, loader, _ = tiny(0)
    expected = init_weights(make_task(0).model, "he", nonlinearity="tanh", seed=3)
    Trainer(max_epochs=1, max_steps=1, callbacks=[weight_init(scheme="he", nonlinearity="tanh", seed=3)]).fit(
        task, loader, optimizer=torch.optim.SGD(task.parameters(), lr=0.0)
    )
    for name, value in expected.state_dict().items():
        assert torch.equal(task.model.state_dict()[name], value), name
