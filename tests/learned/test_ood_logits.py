"""MSP, max logit and energy equal their formulas, keep "larger = more OOD", and flag far inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import example_problem
from deepstrata.learned.ood_logits import EnergyScorer, EntropyScorer, MaxLogitScorer, MaxSoftmaxScorer
from deepstrata.metrics.ood import ood_metrics


def _identity(k: int = 4) -> nn.Module:
    """A 'classifier' whose logits are its inputs: the scores can be checked against closed forms."""
    layer = nn.Linear(k, k, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(k))
    return layer.eval()


def test_scores_equal_their_formulas() -> None:
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) * 3
    model = _identity()
    assert torch.allclose(MaxSoftmaxScorer().fit(model, z).score(model, z), -z.softmax(1).max(1).values, atol=1e-6)
    assert torch.allclose(MaxLogitScorer().fit(model, z).score(model, z), -z.max(1).values, atol=1e-6)
    energy = EnergyScorer(temperature=2.0).fit(model, z)
    assert torch.allclose(energy.score(model, z), -2.0 * torch.logsumexp(z / 2.0, dim=1), atol=1e-5)
    from scipy.stats import entropy

    expected = torch.tensor(entropy(z.softmax(1).double().numpy(), axis=1), dtype=torch.float32)
    assert torch.allclose(EntropyScorer().fit(model, z).score(model, z), expected, atol=1e-5)


def test_confident_inputs_score_lower() -> None:
    """A peaked logit vector is in-distribution-like, a flat one is not: every score orders them so."""
    model = _identity()
    peaked, flat = torch.tensor([[9.0, 0.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    train = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    for cls in (MaxSoftmaxScorer, MaxLogitScorer, EnergyScorer):
        scorer = cls().fit(model, train)
        assert float(scorer.score(model, peaked)) < float(scorer.score(model, flat)), cls.__name__


def test_threshold_is_the_training_quantile_and_predict_uses_it() -> None:
    model = _identity()
    train = torch.randn(400, 4, generator=torch.Generator().manual_seed(2))
    scorer = MaxSoftmaxScorer(tpr=0.9).fit(model, train)
    scores = scorer.score(model, train).double()
    assert scorer.threshold_ == pytest.approx(float(torch.quantile(scores, 0.9)), abs=1e-7)
    assert float(scorer.predict(model, train).float().mean()) == pytest.approx(0.1, abs=0.01)


def test_a_trained_model_flags_random_inputs_at_its_scale_but_not_far_ones() -> None:
    """On the example MLP, random points at the clusters' scale score higher than the clusters; points ten
    times further out do not: a ReLU network's logits grow with the input's norm, so far inputs look
    confident (Hein et al. 2019, "Why ReLU networks yield high-confidence predictions far away")."""
    model, x, y = example_problem(torch.Generator().manual_seed(0))
    near = torch.randn(60, 1, 4, 4, generator=torch.Generator().manual_seed(4)) * float(x.std())
    far = 10.0 * torch.randn(60, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    for cls in (MaxSoftmaxScorer, MaxLogitScorer, EnergyScorer):
        scorer = cls().fit(model, x, y)
        s_in = scorer.score(model, x)
        assert ood_metrics(s_in, scorer.score(model, near))["auroc"] > 0.7, cls.__name__  # measured 0.72-0.84
        assert ood_metrics(s_in, scorer.score(model, far))["auroc"] < 0.5, cls.__name__  # measured 0.33-0.43


def test_bad_settings_and_non_classifiers_are_refused() -> None:
    z = torch.randn(10, 4)
    with pytest.raises(UserError, match="temperature > 0"):
        EnergyScorer(temperature=0.0).fit(_identity(), z)
    with pytest.raises(UserError, match="0 < tpr < 1"):
        MaxSoftmaxScorer(tpr=1.0).fit(_identity(), z)
    with pytest.raises(UserError, match=r"logits of shape \(N, K\)"):
        MaxSoftmaxScorer().fit(nn.Linear(4, 1), z)  # one output: a regressor
    with pytest.raises(UserError, match="cannot take inputs of shape"):
        MaxSoftmaxScorer().fit(_identity(), torch.randn(10, 5))
