"""Sanity: does an attribution method notice when the model it explains has learned nothing?

Problem: some attribution maps mostly reflect the input (edges, ink) rather than what the model
computes; they look the same for a trained network and for one with random weights, and then
they cannot explain the trained one.
Idea: the model-parameter randomisation test of Adebayo et al. (2018, "Sanity Checks for
Saliency Maps"), cascading version. On a copy of the model, re-initialise the parameterised
layers one at a time from the top (the logits) down, as at construction (`reset_parameters`,
from a seeded generator), and after each step explain the same inputs for the same targets (the
trained model's predictions). The Spearman rank correlation (scipy.stats.spearmanr) between each
image's map under the trained model and under the randomised one says how much of the map
survived: a method that depends on the model decorrelates as layers are randomised. Maps are
compared per position, channels summed, by default as absolute values (the paper's "absolute
value" variant; the sign of a randomised model's map is arbitrary). A map that is constant (a
Grad-CAM whose ReLU killed everything) has no ranks: its correlation is NaN, and counted.
`within` (a boolean (N, P) mask of positions, e.g. the ink of a digit) also reports the
correlation over those positions only: maps that are zero wherever the input is zero (input x
gradient, Integrated Gradients from a black baseline) tie on the whole background whatever the
model, and those ties alone make the full-image correlation high.
The caller's model is never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepstrata.explain.faithfulness import reduce_to_positions

Explain = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def parameterised_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module with its own parameters, in the order a forward pass on x first reaches them.

    The forward order (not the definition order) is what "from the top layer down" means.
    Modules with parameters that the forward pass never calls are left out.
    """
    names = {module: name for name, module in model.named_modules()}
    own = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    seen: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda module, args: seen.append(module) if module not in seen else None) for m in own]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [(names[m] or type(m).__name__, m) for m in seen]


def reinitialise(module: nn.Module, generator_seed: int) -> None:
    """Re-initialise `module`'s own parameters (and buffers) as at construction, reproducibly.

    `reset_parameters()` where the module has it (Linear, Conv, norms, embeddings); otherwise
    each own parameter is drawn from N(0, 0.02^2) (weights) or zeroed (1-d biases).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            return
        with torch.no_grad():
            for p in module.parameters(recurse=False):
                if p.dim() > 1:
                    p.normal_(0.0, 0.02)
                else:
                    p.zero_()


def rank_correlation(
    a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, *, absolute: bool = True, within: torch.Tensor | None = None
) -> np.ndarray:
    """Spearman's rho between two attributions of the same inputs, per image: (N,), NaN where a map is constant.

    `within`: a boolean (N, P) mask; each image's correlation is taken over its masked positions only.
    """
    from scipy.stats import spearmanr

    ra, rb = reduce_to_positions(a, x).cpu().numpy(), reduce_to_positions(b, x).cpu().numpy()
    if absolute:
        ra, rb = np.abs(ra), np.abs(rb)
    keep = None if within is None else within.reshape(len(ra), -1).cpu().numpy().astype(bool)
    out = np.full(len(ra), np.nan)
    for i, (u, v) in enumerate(zip(ra, rb)):
        if keep is not None:
            u, v = u[keep[i]], v[keep[i]]
        if len(u) < 2 or np.ptp(u) == 0 or np.ptp(v) == 0:
            continue  # no ranks to compare
        out[i] = float(spearmanr(u, v).statistic)
    return out


@dataclass(frozen=True)
class CascadeStep:
    """The maps after randomising every layer from the top down to `layer` (inclusive)."""

    layer: str
    layers_randomised: int
    spearman: float  # mean over images with a defined correlation
    undefined: int  # images whose map (either one) was constant
    spearman_within: float = math.nan  # the same over the `within` positions only (NaN when none were given)
    undefined_within: int = 0

    @property
    def defined(self) -> bool:
        return not math.isnan(self.spearman)


def cascading_randomisation(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    explain: Explain,
    *,
    seed: int = 0,
    absolute: bool = True,
    original: torch.Tensor | None = None,
    within: torch.Tensor | None = None,
) -> list[CascadeStep]:
    """One `CascadeStep` per parameterised layer, top (logits) first, each with every layer above it randomised too.

    `explain(model, x, target)` is the method under test; `original` its map under the trained
    model when already computed; `within` see `rank_correlation`. The trained `model` is
    deep-copied before anything changes.
    """
    trained = model.eval()
    if original is None:
        original = explain(trained, x, target)
    randomised = copy.deepcopy(trained).eval()
    layers = parameterised_layers(randomised, x)
    steps = []
    for k, (name, module) in enumerate(reversed(layers), start=1):
        reinitialise(module, seed + k)
        randomised.eval()
        explained = explain(randomised, x, target)
        rho = rank_correlation(original, explained, x, absolute=absolute)
        inside = rank_correlation(original, explained, x, absolute=absolute, within=within) if within is not None else np.full(len(x), np.nan)
        steps.append(CascadeStep(name, k, _mean(rho), int(np.isnan(rho).sum()), _mean(inside), int(np.isnan(inside).sum()) if within is not None else 0))
    return steps


def _mean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else math.nan
