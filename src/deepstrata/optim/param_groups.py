"""Parameter groups: which tensors decay, which learn slower, which stay frozen.

Problem: weight decay pulls every tensor towards zero, but shrinking a bias or a
normalisation gain only fights the normalisation and hurts accuracy; fine-tuning also needs
different step sizes for a pretrained body and a fresh head (Howard & Ruder 2018, ULMFiT).
Idea: split the parameters into optimizer groups by rule: biases and normalisation weights get
no weight decay by default, and name patterns set a group's LR (absolute or as a fraction of
the base LR) or freeze it (Loshchilov & Hutter 2019 on decoupled decay; timm's
`param_groups_weight_decay`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.nn.no_decay import no_decay_names


@dataclass(frozen=True)
class GroupRule:
    """Parameters whose name matches `match` (fnmatch: `head.*`, `body.0.*`) get these settings."""

    match: str
    lr: float | None = None
    lr_scale: float | None = None
    weight_decay: float | None = None
    frozen: bool = False


def parameter_groups(
    model: nn.Module,
    *,
    base_lr: float,
    decay_norm_and_bias: bool = False,
    rules: Sequence[GroupRule] = (),
) -> list[dict[str, Any]]:
    """Optimizer param groups for `model`; the first matching rule decides a parameter's group.

    Frozen parameters get `requires_grad=False` and join no group. A group only names `lr` or
    `weight_decay` when it differs from the optimizer's own setting.
    """
    skip_decay = set() if decay_norm_and_bias else no_decay_names(model)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    used = [False] * len(rules)
    for name, param in model.named_parameters():
        index = next((i for i, r in enumerate(rules) if fnmatch.fnmatchcase(name, r.match)), None)
        rule = rules[index] if index is not None else GroupRule(match="*")
        if index is not None:
            used[index] = True
        if rule.frozen:
            param.requires_grad_(False)
            continue
        if not param.requires_grad:
            continue
        settings: dict[str, Any] = {}
        if rule.lr is not None:
            settings["lr"] = rule.lr
        elif rule.lr_scale is not None:
            settings["lr"] = base_lr * rule.lr_scale
        if name in skip_decay:
            settings["weight_decay"] = 0.0
        elif rule.weight_decay is not None:
            settings["weight_decay"] = rule.weight_decay
        key = (index, tuple(sorted(settings.items())))
        group = groups.setdefault(key, {"params": [], "names": [], **settings})
        group["params"].append(param)
        group["names"].append(name)
    unused = [r.match for r, u in zip(rules, used) if not u]
    if unused:
        sample = ", ".join(n for n, _ in list(model.named_parameters())[:6])
        raise ConfigError(f"optimizer.param_groups: pattern(s) {unused} match no parameter; parameter names look like: {sample}, ...")
    if not groups:
        raise ConfigError("optimizer.param_groups: every parameter is frozen; nothing is left to train")
    return list(groups.values())
