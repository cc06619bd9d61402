"""Mahalanobis on stages: the class_gaussian distance per layer, z-scored and averaged; pre-processing helps in-distribution."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned.class_gaussian import ClassConditionalGaussian
from deepstrata.learned.ood_base import example_problem
from deepstrata.learned.ood_mahalanobis import MahalanobisScorer
from deepstrata.metrics.ood import ood_metrics


def _problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    model, x, y = example_problem(torch.Generator().manual_seed(0))
    queries = torch.randn(12, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return model, x, y, queries


def _layers(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The MLP's two hidden layers (its stages) and its pre-logit vector, computed directly."""
    with torch.no_grad():
        stages = model.forward_intermediates(x)
        return [*stages, model.forward_head(model.forward_features(x), pre_logits=True)]


def test_pooled_only_is_the_class_gaussian_score_standardised() -> None:
    model, x, y, q = _problem()
    scorer = MahalanobisScorer(stages=[]).fit(model, x, y)
    features = _layers(model, x)[-1].double()
    gaussian = ClassConditionalGaussian().fit(features, y)
    train = gaussian.mahalanobis(features)
    expected = (gaussian.mahalanobis(_layers(model, q)[-1].double()) - train.mean()) / train.std()
    assert scorer.dims_ == [8] and scorer.stages_ == []
    assert torch.allclose(scorer.score(model, q).double(), expected, atol=1e-5)


def test_every_stage_counts_as_one_z_score() -> None:
    model, x, y, q = _problem()
    scorer = MahalanobisScorer(batch_size=16).fit(model, x, y)  # stages=None: every stage, plus the pooled vector
    assert scorer.stages_ == [0, 1] and scorer.dims_ == [12, 8, 8]
    zs = []
    for train_f, query_f in zip(_layers(model, x), _layers(model, q), strict=True):
        g = ClassConditionalGaussian().fit(train_f.double(), y)
        d_train, d_query = g.mahalanobis(train_f.double()), g.mahalanobis(query_f.double())
        zs.append((d_query - d_train.mean()) / d_train.std())
    assert torch.allclose(scorer.score(model, q).double(), torch.stack(zs, 1).mean(1), atol=1e-5)


def test_far_inputs_score_high_and_preprocessing_lowers_in_distribution_scores() -> None:
    model, x, y, _ = _problem()
    far = 10.0 * torch.randn(60, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    plain = MahalanobisScorer().fit(model, x, y)
    assert ood_metrics(plain.score(model, x), plain.score(model, far))["auroc"] > 0.95  # measured 1.0
    stepped = MahalanobisScorer(epsilon=0.05).fit(model, x, y)
    assert float(stepped.score(model, x).mean()) < float(plain.score(model, x).mean())
    assert stepped.score_mean_.equal(plain.score_mean_)  # standardised by the unperturbed training distances


def test_bad_stages_and_models_are_refused() -> None:
    model, x, y, _ = _problem()
    with pytest.raises(UserError, match="stage 5 is out of range: MLP has 2 feature stages"):
        MahalanobisScorer(stages=[5]).fit(model, x, y)
    with pytest.raises(UserError, match="no features to score"):
        MahalanobisScorer(stages=[], include_pooled=False).fit(model, x, y)
    with pytest.raises(UserError, match="not a Backbone"):
        MahalanobisScorer().fit(torch.nn.Linear(16, 3), x.flatten(1), y)
    with pytest.raises(UserError, match="labels"):
        MahalanobisScorer().fit(model, x)  # class means need the labels
