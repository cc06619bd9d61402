"""Exact Shapley values by enumerating every coalition: the reference the sampling methods approximate.

Problem: KernelSHAP, DeepLIFT-SHAP and GradientSHAP all estimate Shapley values, and an estimate
can only be checked against the value itself.
Idea: for a model with M <= `max_features` features, evaluate the class score on all 2^M
coalitions S (features in S from x, the others from the baseline: interventional Shapley values
with one reference) and apply the definition (Shapley 1953),

    phi_i = sum_{S subset of F minus i} |S|! (M - |S| - 1)! / M! * (v(S + i) - v(S)),

whose values sum to v(F) - v(empty) = F(x) - F(baseline) (efficiency). The cost is 2^M forward
passes per input, so this is for tests and small tabular models (M <= 16).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.explain.base import Explainer, check_batch, constant_baseline
from deepstrata.registry import register_explainer


def coalitions(m: int) -> torch.Tensor:
    """(2^m, m) bool: row s holds the binary digits of s, feature j present when bit j is set."""
    s = torch.arange(2**m)[:, None]
    return (s >> torch.arange(m)[None, :]) & 1 == 1


def shapley_values(value: torch.Tensor, m: int) -> torch.Tensor:
    """phi (m,) from the coalition values `value` (2^m,), indexed as `coalitions(m)`, by the definition."""
    present = coalitions(m)
    sizes = present.sum(1)
    phi = torch.zeros(m, dtype=value.dtype)
    for i in range(m):
        without = ~present[:, i]  # coalitions S not holding i; S + i is index s | 2^i
        s = torch.nonzero(without)[:, 0]
        k = sizes[s]
        weight = torch.tensor([math.factorial(int(a)) * math.factorial(m - int(a) - 1) / math.factorial(m) for a in k], dtype=value.dtype)
        phi[i] = (weight * (value[s | (1 << i)] - value[s])).sum()
    return phi


def exact_shapley(model: nn.Module, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Shapley values of every element of each input, shaped like x: coalitions of x's features over `baseline`."""
    n = x.shape[0]
    m = x[0].numel()
    present = coalitions(m).to(x.device)  # (2^m, m)
    out = torch.zeros(n, m, dtype=torch.float64)
    with torch.no_grad():
        for row in range(n):
            xi, bi = x[row].reshape(1, m), baseline[row].reshape(1, m)
            values = []
            for start in range(0, present.shape[0], batch_size):
                p = present[start : start + batch_size]
                mixed = torch.where(p, xi, bi).reshape(-1, *x.shape[1:])
                values.append(model(mixed)[:, int(target[row])].double().cpu())
            out[row] = shapley_values(torch.cat(values), m)
    return out.to(x.dtype).reshape(x.shape).to(x.device)


@register_explainer("exact_shapley")
class ExactShapleyExplainer(Explainer):
    """Exact Shapley values (Shapley 1953) by enumerating all 2^M coalitions over the constant `baseline`; M <= max_features.

    Every input element is a player, so this suits small tables (M features); refused beyond
    `max_features` (2^M forward passes per input).
    """

    needs = "forward"

    def __init__(self, *, baseline: float = 0.0, max_features: int = 12) -> None:
        if not 1 <= max_features <= 20:
            raise ConfigError(f"exact_shapley.max_features must lie in 1..20 (2^M passes per input), got {max_features}")
        self.baseline, self.max_features = baseline, max_features

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        reason = super().why_not(model, x)
        if reason is None and not torch.is_floating_point(x):
            reason = f"exact_shapley replaces features by a baseline value, but these inputs are {x.dtype} ids"
        if reason is None and x[0].numel() > self.max_features:
            reason = (
                f"exact_shapley enumerates 2^M coalitions and these inputs have M = {x[0].numel()} features, more than "
                f"max_features={self.max_features}; use kernel_shap for larger inputs"
            )
        return reason

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("exact_shapley", x, target)
        return exact_shapley(model, x, target, constant_baseline(x, self.baseline))
