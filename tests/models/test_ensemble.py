"""The ensemble model: log of the mean softmax of its members, rebuilt from model.json alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.models.ensemble import EnsembleModel, ensemble
from deepstrata.run.artifact import load_model, save_model

MEMBER = {"architecture": "mlp", "kwargs": {"in_features": 4, "num_classes": 3, "hidden": [5], "dropout": 0.1}}


def _model(members: int = 3) -> EnsembleModel:
    torch.manual_seed(0)
    return ensemble(members=[MEMBER] * members).eval()


def test_the_output_is_the_log_of_the_mean_member_probability() -> None:
    model = _model()
    x = torch.randn(6, 4)
    with torch.no_grad():
        by_hand = torch.stack([m(x).softmax(1) for m in model.members]).mean(0)  # (N, K)
        out = model(x)
        torch.testing.assert_close(out.exp(), by_hand)
        torch.testing.assert_close(out.softmax(1), by_hand)  # softmax of the output: the averaged probability
        assert model.member_log_probs(x).shape == (3, 6, 3)
        # cross-entropy of the output is the ensemble's negative log-likelihood
        y = torch.tensor([0, 1, 2, 0, 1, 2])
        nll = -by_hand[torch.arange(6), y].log().mean()
        torch.testing.assert_close(torch.nn.functional.cross_entropy(out, y), nll)


def test_one_member_is_that_member_in_log_probabilities() -> None:
    model = _model(1)
    x = torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.members[0](x).log_softmax(1))
        assert math.isclose(float(model(x).exp().sum(1)[0]), 1.0, rel_tol=1e-6)


def test_round_trip_through_model_json(tmp_path: Path) -> None:
    model = _model(2)
    save_model(model, tmp_path, {"architecture": "ensemble", "kwargs": {"members": [MEMBER, MEMBER]}})
    loaded, spec = load_model(tmp_path)
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    assert spec["kwargs"]["members"][0]["architecture"] == "mlp"
    x = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert sorted(loaded.state_dict()) == sorted(model.state_dict())


def test_bad_member_descriptions_are_user_errors() -> None:
    with pytest.raises(UserError, match="member 0 must be"):
        ensemble(members=["mlp"])  # type: ignore[list-item]
    with pytest.raises(UserError, match="unknown keys"):
        ensemble(members=[{**MEMBER, "weights": "x"}])
    with pytest.raises(UserError, match="unknown model 'mlq'; did you mean mlp"):
        ensemble(members=[{"architecture": "mlq", "kwargs": {}}])
    with pytest.raises(UserError, match="at least one member"):
        ensemble(members=[])
