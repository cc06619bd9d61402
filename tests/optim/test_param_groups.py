"""Parameter groups: no decay on biases and norm weights; per-group LR; frozen parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.config import load_recipe
from deepstrata.errors import ConfigError
from deepstrata.experiment import build_experiment
from deepstrata.optim.param_groups import GroupRule, parameter_groups


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(4, 8)
        self.body = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.BatchNorm1d(8))
        self.head = nn.Linear(8, 2)


def _group_of(groups: list[dict], name: str) -> dict:
    return next(g for g in groups if name in g["names"])


def test_biases_and_norm_weights_get_no_weight_decay_by_default() -> None:
    groups = parameter_groups(Net(), base_lr=0.1)
    for name in ["base.bias", "body.0.bias", "body.1.weight", "body.1.bias", "body.2.weight", "head.bias"]:
        assert _group_of(groups, name)["weight_decay"] == 0.0, name
    for name in ["base.weight", "body.0.weight", "head.weight"]:
        assert "weight_decay" not in _group_of(groups, name), name  # the optimizer's own setting applies


def test_decay_is_real_only_for_weight_matrices() -> None:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.AdamW(parameter_groups(net, base_lr=0.1), lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: any change is weight decay
    opt.step()
    assert torch.equal(net.head.bias, before["head.bias"]) and torch.equal(net.body[1].weight, before["body.1.weight"])
    torch.testing.assert_close(net.head.weight, before["head.weight"] * (1 - 0.1 * 0.5))


def test_fine_tuning_groups_frozen_base_low_lr_body_normal_head() -> None:
    net = Net()
    rules = [GroupRule(match="base.*", frozen=True), GroupRule(match="body.*", lr_scale=0.1)]
    groups = parameter_groups(net, base_lr=1e-2, rules=rules)
    assert not net.base.weight.requires_grad and all("base" not in n for g in groups for n in g["names"])
    assert _group_of(groups, "body.0.weight")["lr"] == pytest.approx(1e-3)
    assert "lr" not in _group_of(groups, "head.weight")
    opt = torch.optim.SGD(groups, lr=1e-2)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([1e-3, 1e-2])


def test_a_pattern_matching_nothing_is_an_error_that_shows_the_names() -> None:
    with pytest.raises(ConfigError, match="match no parameter.*base.weight"):
        parameter_groups(Net(), base_lr=0.1, rules=[GroupRule(match="backbone.*", frozen=True)])


def test_recipe_param_groups_reach_the_optimizer(tiny_recipe: dict) -> None:
    tiny_recipe["optimizer"] = {"name": "sgd", "lr": 0.1, "param_groups": [{"match": "head.*", "lr_scale": 0.5}]}
    exp = build_experiment(load_recipe(tiny_recipe))
    opt = exp.build_optimizer()
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [pytest.approx(0.05), pytest.approx(0.1)]
