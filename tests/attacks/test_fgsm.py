"""FGSM: its one-line definition; PGD's first step; the random-start variant stays in the ball."""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.attacks.base import lp_norm
from deepstrata.attacks.fgsm import fgsm
from deepstrata.attacks.pgd import pgd

Trained = tuple[nn.Module, torch.Tensor, torch.Tensor]


def test_fgsm_is_its_one_line_definition(trained: Trained) -> None:
    """x_adv = clip(x + eps * sign(grad_x CE(model(x), y)), 0, 1) (Goodfellow et al. 2015)."""
    model, x, y = trained
    x_req = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x_req), y).backward()
    expected = (x + 0.1 * x_req.grad.sign()).clamp(0, 1)
    torch.testing.assert_close(fgsm(model, x, y, eps=0.1), expected, rtol=0, atol=1e-6)


def test_fgsm_is_one_pgd_step_of_size_eps(trained: Trained) -> None:
    model, x, y = trained
    torch.testing.assert_close(fgsm(model, x, y, eps=0.1), pgd(model, x, y, eps=0.1, steps=1, step_size=0.1, random_start=False), rtol=0, atol=1e-6)


def test_fgsm_lowers_accuracy(trained: Trained) -> None:
    model, x, y = trained
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        adv = (model(fgsm(model, x, y, eps=0.1)).argmax(1) == y).float().mean()
    assert float(adv) < float(clean) - 0.2, (float(clean), float(adv))


def test_random_start_fgsm_stays_in_the_ball_and_the_box(trained: Trained) -> None:
    """Wong et al. 2020's FGSM-RS steps 1.25 eps from a random point: projected back onto the ball."""
    model, x, y = trained
    adv = fgsm(model, x, y, eps=0.1, random_start=True, generator=torch.Generator().manual_seed(0))
    assert float(lp_norm(adv - x, "linf").max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    again = fgsm(model, x, y, eps=0.1, random_start=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, again)  # randomness only from the generator
