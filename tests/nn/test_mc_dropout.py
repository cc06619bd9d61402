"""MC dropout: only dropout switches on, the passes are seeded, and a model without dropout is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.nn.mc_dropout import dropout_sampling, mc_dropout_probs


def _model(p: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 3)).eval()


def test_only_dropout_is_in_train_mode_and_modes_are_restored() -> None:
    model = _model()
    with dropout_sampling(model):
        assert [m.training for m in model] == [False, False, False, True, False]
    assert not any(m.training for m in model.modules())
    model.train()
    with dropout_sampling(model):
        assert not model[1].training  # BatchNorm keeps its running statistics even if the model was training
    assert all(m.training for m in model.modules())


def test_passes_differ_are_seeded_and_leave_the_global_rng_alone() -> None:
    model = _model()
    x = torch.randn(8, 4)
    running_mean = model[1].running_mean.clone()
    state = torch.random.get_rng_state()
    samples = mc_dropout_probs(model, model, (x,), samples=5, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert samples.shape == (5, 8, 3) and torch.allclose(samples.sum(-1), torch.ones(5, 8))
    assert not torch.allclose(samples[0], samples[1])  # different masks
    assert torch.equal(samples, mc_dropout_probs(model, model, (x,), samples=5, seed=1))
    assert torch.equal(model[1].running_mean, running_mean)  # BatchNorm statistics untouched
    with torch.no_grad():
        assert not torch.allclose(samples[0], model(x).softmax(1))  # a pass with masks is not the deterministic output


@pytest.mark.parametrize(("model", "why"), [(nn.Sequential(nn.Linear(4, 3)), "no dropout layers"), (_model(0.0), "all have p=0")])
def test_a_model_without_dropout_is_refused(model: nn.Module, why: str) -> None:
    with pytest.raises(UserError, match=rf"needs a model trained with dropout.*{why}.*model\.dropout=0\.2"):
        mc_dropout_probs(model, model, (torch.randn(2, 4),), samples=3)
