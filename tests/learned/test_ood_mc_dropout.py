"""MC dropout: the predictive entropy of seeded dropout passes; only dropout is switched on; no dropout, no score."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import example_problem
from deepstrata.learned.ood_mc_dropout import MCDropoutScorer
from deepstrata.registry import MODELS


def test_entropy_of_the_averaged_passes_by_hand() -> None:
    model, x, y = example_problem(torch.Generator().manual_seed(0), dropout=0.3)
    scorer = MCDropoutScorer(passes=5, seed=7, batch_size=len(x)).fit(model, x, y)
    with torch.no_grad():
        torch.manual_seed(7)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()
        probs = torch.stack([model(x).softmax(1) for _ in range(5)]).mean(0)
        model.eval()
    expected = -(probs * probs.log()).sum(1)
    scores = scorer.score(model, x)
    assert torch.allclose(scores, expected, atol=1e-6)
    assert float(scores.min()) >= 0 and float(scores.max()) <= math.log(3) + 1e-6


def test_scores_repeat_and_leave_the_global_random_state_and_batch_norm_alone() -> None:
    torch.manual_seed(0)
    model = MODELS.get("small_cnn")(num_classes=3, widths=[4, 8], dropout=0.5).eval()  # batch norm + dropout
    x = torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    state, running = torch.get_rng_state(), model.features[1].running_mean.clone()
    scorer = MCDropoutScorer(passes=4).fit(model, x)
    first, second = scorer.score(model, x), scorer.score(model, x)
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(model.features[1].running_mean, running)  # batch norm stayed in eval mode
    assert not any(m.training for m in model.modules())
    assert scorer.dropout_layers_ == 1


def test_a_model_without_dropout_is_refused() -> None:
    model, x, y = example_problem(torch.Generator().manual_seed(0), dropout=0.0)  # Dropout(p=0) modules only
    with pytest.raises(UserError, match="MLP has no dropout layer with p > 0"):
        MCDropoutScorer().fit(model, x, y)
    with pytest.raises(UserError, match="passes >= 2"):
        MCDropoutScorer(passes=1).fit(example_problem(torch.Generator().manual_seed(0), dropout=0.3)[0], x)
