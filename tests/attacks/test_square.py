"""Square attack: lowers a trained model's accuracy with scores alone, inside the eps-ball, within its query budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.attacks.square import p_selection, square
from deepstrata.errors import UserError

Trained = tuple[nn.Module, torch.Tensor, torch.Tensor]


class Counting(nn.Module):
    """Counts the forwards (query rounds) and the rows (example queries) the attack asks for."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls, self.rows = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.model(x)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_square_lowers_accuracy_inside_the_ball_without_gradients(trained: Trained) -> None:
    model, x, y = trained
    with torch.no_grad():  # no gradient is available to the attack at all
        adv = square(model, x, y, eps=0.2, n_queries=300, generator=torch.Generator().manual_seed(0))
    clean, robust = _accuracy(model, x, y), _accuracy(model, adv, y)
    assert clean > 0.85 and robust < 0.2, (clean, robust)  # observed: 0.93 -> 0.06
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_square_respects_the_query_budget(trained: Trained) -> None:
    model, x, y = trained
    counted = Counting(model)
    square(counted, x, y, eps=0.02, n_queries=50, generator=torch.Generator().manual_seed(0))
    assert counted.calls <= 50  # one batched forward per query round
    assert counted.rows <= 50 * len(x)  # no example queried more than n_queries times
    assert counted.calls == 50  # at eps 0.02 some examples resist: the budget is used up


def test_misclassified_examples_are_left_as_they_are(trained: Trained) -> None:
    model, x, y = trained
    wrong = (model(x).argmax(1) + 1) % 10
    with torch.no_grad():
        adv = square(model, x, wrong, eps=0.2, n_queries=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, x)


def test_the_window_schedule_halves_at_the_papers_milestones() -> None:
    assert p_selection(0.8, 0, 10000) == 0.8
    assert p_selection(0.8, 30, 10000) == 0.4
    assert p_selection(0.8, 9000, 10000) == 0.8 / 512
    assert p_selection(0.8, 5, 100) == 0.8 / 2**3  # 5 of 100 queries = 500 of 10,000


def test_square_is_linf_only() -> None:
    with pytest.raises(UserError, match="unknown norm 'l2'"):
        square(nn.Flatten(), torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long), eps=0.1, norm="l2")
