"""Every optimizer is reachable by name, and named optimizers are torch's own with the recipe's settings."""

from __future__ import annotations

import pytest
import torch

from deepstrata.registry import registry


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "radam", "lamb"])
def test_every_optimizer_reduces_a_quadratic(name: str) -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8) * 3)
    lr = {"sgd": 0.1, "adagrad": 0.5, "lamb": 0.1}.get(name, 0.05)
    opt = registry("optimizer").get(name)([w], lr=lr)
    start = float((w**2).sum())
    for _ in range(50):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert float((w**2).sum()) < 0.5 * start


def test_nesterov_sgd_is_torch_sgd_with_nesterov() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    opt = registry("optimizer").get("sgd")([w], lr=0.1, momentum=0.9, nesterov=True)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


def test_radam_rmsprop_adagrad_are_torch_implementations() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    get = registry("optimizer").get
    assert isinstance(get("radam")([w]), torch.optim.RAdam)
    assert isinstance(get("rmsprop")([w]), torch.optim.RMSprop)
    assert isinstance(get("adagrad")([w]), torch.optim.Adagrad)
