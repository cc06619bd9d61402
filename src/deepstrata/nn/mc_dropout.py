"""MC dropout: keep dropout on at test time and read the spread of T stochastic passes as uncertainty.

Problem: a network trained with dropout predicts with it switched off, one deterministic softmax
that cannot say how much the weights themselves are in doubt.
Idea: a network with dropout before its layers is a variational approximation to a Bayesian
network (Bernoulli variational distribution over the weights); leaving the dropout masks on
and averaging T forward passes, p(y | x) ~ (1/T) sum_t softmax(f(x; mask_t)), is Monte Carlo
integration over that approximate posterior (Gal & Ghahramani 2016, "Dropout as a Bayesian
Approximation: Representing Model Uncertainty in Deep Learning").

Only the dropout modules go to train mode: BatchNorm keeps its running statistics (in train mode
it would normalise with the test batch's own statistics and update them), so the passes differ
by their masks alone. The masks come from a seeded generator inside `torch.random.fork_rng`, so
the caller's global random state is left as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError

# Every dropout flavour (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout) derives from it.
_DropoutNd = nn.modules.dropout._DropoutNd


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The model's dropout modules with p > 0 (the ones that make passes differ)."""
    return [m for m in model.modules() if isinstance(m, _DropoutNd) and float(m.p) > 0.0]


def check_has_dropout(model: nn.Module, *, where: str = "MC dropout") -> list[nn.Module]:
    """The active dropout modules; a UserError saying what to do when there are none."""
    found = dropout_modules(model)
    if not found:
        zero = [m for m in model.modules() if isinstance(m, _DropoutNd)]
        why = f"its {len(zero)} dropout layer(s) all have p=0" if zero else "it has no dropout layers"
        raise UserError(
            f"{where} needs a model trained with dropout, but {type(model).__name__} has none active ({why}); "
            "train it with dropout (e.g. --set model.dropout=0.2) or choose another method (softmax, laplace, ensemble)"
        )
    return found


@contextlib.contextmanager
def dropout_sampling(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, the model's dropout modules are in train mode and everything else in eval; restored after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in check_has_dropout(model):
        m.train()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


@torch.no_grad()
def mc_dropout_probs(forward: Callable[..., torch.Tensor], model: nn.Module, inputs: tuple[Any, ...], *, samples: int, seed: int = 0) -> torch.Tensor:
    """(T, N, K) softmax outputs of `samples` passes `forward(*inputs)` with only dropout active.

    `forward` is usually the model itself; `model` is the module whose dropout layers are switched.
    The same seed gives the same masks on the same device.
    """
    if samples < 1:
        raise UserError(f"MC dropout needs at least 1 sample, got samples={samples}; e.g. --mc-samples 20")
    devices = [inputs[0].device] if isinstance(inputs[0], torch.Tensor) and inputs[0].is_cuda else []
    with dropout_sampling(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.stack([torch.softmax(forward(*inputs), dim=-1) for _ in range(samples)])
