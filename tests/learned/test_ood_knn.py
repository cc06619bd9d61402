"""Deep nearest neighbours: the k-th neighbour distance of normalised features, checked by brute force."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import example_problem
from deepstrata.learned.ood_knn import KNNScorer
from deepstrata.metrics.ood import ood_metrics


def test_scores_equal_brute_force_kth_distance() -> None:
    model, x, y = example_problem(torch.Generator().manual_seed(0))
    queries = torch.randn(15, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    scorer = KNNScorer(k=5, batch_size=4).fit(model, x, y)
    with torch.no_grad():
        unit = lambda t: torch.nn.functional.normalize(model.forward_head(model.forward_features(t), pre_logits=True), dim=1)  # noqa: E731
        bank, q = unit(x), unit(queries)
    assert torch.allclose(scorer.bank_, bank, atol=1e-6)
    expected = torch.cdist(q, bank).sort(dim=1).values[:, 4]  # the 5th closest
    assert torch.allclose(scorer.score(model, queries), expected, atol=1e-5)
    # On the training rows the row itself is left out: the threshold comes from the 6th closest, self included.
    train_scores = torch.cdist(bank, bank).sort(dim=1).values[:, 5]
    assert scorer.threshold_ == pytest.approx(float(torch.quantile(train_scores.double(), 0.95)), abs=1e-5)


def test_far_inputs_have_no_close_neighbours() -> None:
    model, x, y = example_problem(torch.Generator().manual_seed(0))
    far = 10.0 * torch.randn(60, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    scorer = KNNScorer(k=5).fit(model, x, y)
    assert ood_metrics(scorer.score(model, x), scorer.score(model, far))["auroc"] > 0.9  # measured 0.96


def test_k_must_fit_the_training_set() -> None:
    model, x, y = example_problem(torch.Generator().manual_seed(0))
    with pytest.raises(UserError, match="more than k=50 training inputs"):
        KNNScorer().fit(model, x[:50])
    with pytest.raises(UserError, match="k >= 1"):
        KNNScorer(k=0).fit(model, x)
    with pytest.raises(UserError, match="not a Backbone"):
        KNNScorer(k=2).fit(torch.nn.Linear(16, 3), x.flatten(1))
