"""PGD: equal to the Adversarial Robustness Toolbox's ProjectedGradientDescent; inside the eps-ball and the box; restarts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepstrata.attacks.base import keep_better, lp_norm
from deepstrata.attacks.pgd import pgd


Trained = tuple[nn.Module, torch.Tensor, torch.Tensor]


@pytest.mark.parametrize(("norm", "eps", "step"), [("linf", 0.1, 0.02), ("l2", 1.0, 0.2)])
def test_pgd_without_random_start_equals_art(trained: Trained, norm: str, eps: float, step: float) -> None:
    """ART's PGD (PyTorchClassifier, sign/normalised steps of eps_step, max_iter, no random init, clip_values)."""
    pytest.importorskip("art")
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    model, x, y = trained
    x, y = x[:64], y[:64]
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0))
    art = ProjectedGradientDescent(
        classifier, norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=step, max_iter=10, num_random_init=0, batch_size=64, verbose=False
    )
    expected = torch.from_numpy(art.generate(x.numpy(), y=y.numpy()))
    ours = pgd(model, x, y, eps=eps, norm=norm, steps=10, step_size=step, random_start=False)
    assert float(lp_norm(expected - x, norm).min()) > eps / 2  # the attack moved every input: a real comparison
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_the_box_and_raises_the_loss(trained: Trained, norm: str) -> None:
    model, x, y = trained
    x, y = x[:32], y[:32]
    eps = 0.1 if norm == "linf" else 0.8
    adv = pgd(model, x, y, eps=eps, norm=norm, steps=10, generator=torch.Generator().manual_seed(0))
    assert float(lp_norm(adv - x, norm).max()) <= eps + 1e-5
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    loss = nn.CrossEntropyLoss()
    with torch.no_grad():
        assert float(loss(model(adv), y)) > float(loss(model(x), y)) + 0.1


def test_eps_is_in_raw_units_whatever_the_normalisation(trained: Trained) -> None:
    """Inputs normalised by std 0.5 (model input = 2 x raw, box [0, 2]): the same raw perturbation, doubled."""
    model, x, y = trained
    x, y = x[:16], y[:16]

    def scaled(z: torch.Tensor) -> torch.Tensor:  # the same classifier, on inputs twice as large
        return model(z / 2)

    raw = pgd(model, x, y, eps=0.1, steps=5, random_start=False)
    normalised = pgd(scaled, 2 * x, y, eps=0.1, lower=0.0, upper=2.0, unit=2.0, steps=5, random_start=False)
    torch.testing.assert_close(normalised, 2 * raw, rtol=0, atol=1e-5)
    assert float((normalised - 2 * x).abs().max()) == pytest.approx(0.2, abs=1e-5)


def test_the_box_can_be_per_channel_and_is_respected(trained: Trained) -> None:
    model, x, y = trained
    x, y = x[:16], y[:16]
    lower, upper = torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.9)
    x = x.clamp(0.2, 0.9)
    adv = pgd(model, x, y, eps=0.3, lower=lower, upper=upper, steps=5, generator=torch.Generator().manual_seed(1))
    assert float(adv.min()) >= 0.2 - 1e-7 and float(adv.max()) <= 0.9 + 1e-7


def test_restarts_keep_the_first_success_else_the_worst_loss() -> None:
    best, cand = torch.zeros(3, 2), torch.ones(3, 2)
    # example 0 already fooled (kept though the candidate's loss is higher); 1: candidate fools; 2: higher loss
    kept, loss, done = keep_better(
        best, torch.tensor([0.25, 5.0, 1.0]), torch.tensor([True, False, False]), cand, torch.tensor([9.0, 0.5, 2.0]), torch.tensor([False, True, False])
    )
    assert kept[:, 0].tolist() == [0.0, 1.0, 1.0] and loss.tolist() == [0.25, 0.5, 2.0] and done.tolist() == [True, True, False]
    kept, _, _ = keep_better(best, torch.tensor([3.0]), torch.tensor([False]), cand[:1], torch.tensor([2.0]), torch.tensor([False]))
    assert float(kept.sum()) == 0.0  # lower loss, not fooled: the kept one stays


def test_restarts_fool_at_least_as_many_examples(trained: Trained) -> None:
    model, x, y = trained
    x, y = x[:64], y[:64]
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # attack the model's own predictions: every example starts correct
    one = pgd(model, x, y, eps=0.03, steps=3, restarts=1, generator=torch.Generator().manual_seed(0))
    five = pgd(model, x, y, eps=0.03, steps=3, restarts=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fooled_one, fooled_five = (model(one).argmax(1) != y), (model(five).argmax(1) != y)
    assert bool((fooled_five | ~fooled_one).all())  # the first restart is the single run: its successes are kept
    assert int(fooled_five.sum()) >= int(fooled_one.sum())


def test_parameters_get_no_gradient_and_mode_is_left_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).train()
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    pgd(model, x, y, eps=0.1, steps=2)
    assert model.training and all(p.grad is None for p in model.parameters())


class _Band(nn.Module):
    """Class 1 only inside a narrow band around 0.5: z = (0, 1 - 100 (x - 0.5)^2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), 1 - 100 * (x - 0.5) ** 2], dim=1)


def test_best_iterate_keeps_an_iterate_that_fooled_the_model_when_the_last_one_does_not() -> None:
    """From x = 0.3 (class 0), a 0.25 step lands in the band (0.55, fooled) and the next one leaves it (0.30)."""
    from deepstrata.attacks.base import margin_loss

    x, y = torch.tensor([[0.3]]), torch.tensor([0])
    options = {"eps": 0.3, "steps": 2, "step_size": 0.25, "random_start": False, "loss": margin_loss}
    last = pgd(_Band(), x, y, **options)
    best = pgd(_Band(), x, y, best_iterate=True, **options)
    assert float(last) == pytest.approx(0.30) and float(best) == pytest.approx(0.55)
    with torch.no_grad():
        assert _Band()(last).argmax(1).item() == 0 and _Band()(best).argmax(1).item() == 1


def test_best_iterate_fools_every_example_the_last_iterate_fools(trained: Trained) -> None:
    model, x, y = trained
    x, y = x[:64], y[:64]
    options = {"eps": 0.05, "steps": 5, "step_size": 0.03}
    last = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **options)
    best = pgd(model, x, y, best_iterate=True, generator=torch.Generator().manual_seed(0), **options)
    with torch.no_grad():
        fooled_last, fooled_best = model(last).argmax(1) != y, model(best).argmax(1) != y
    assert bool((fooled_best | ~fooled_last).all())
    assert float(lp_norm(best - x, "linf").max()) <= 0.05 + 1e-6


def test_later_restarts_attack_only_the_examples_not_yet_fooled(trained: Trained) -> None:
    model, x, y = trained
    x, y = x[:64], y[:64]
    sizes: list[int] = []

    def counted(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(inputs.shape[0])
        return model(inputs)

    pgd(counted, x, y, eps=0.05, steps=2, restarts=3, generator=torch.Generator().manual_seed(0))
    # each restart: 2 gradient passes and one check; the first restart sees all 64
    assert sizes[:3] == [64, 64, 64]
    assert all(n < 64 for n in sizes[3:]) and len(sizes) > 3
