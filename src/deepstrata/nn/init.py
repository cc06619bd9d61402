"""Weight initialisation by name: Xavier/Glorot, He/Kaiming, orthogonal, LeCun.

Problem: in a deep network each layer multiplies the signal's variance by fan_in * Var(w)
(times 1/2 after a ReLU); unless that product is 1, activations and gradients explode or vanish
geometrically with depth.
Idea: draw weights with Var(w) = gain^2 / fan: 1/fan_in for linear/tanh-like units (LeCun 1998),
2/(fan_in + fan_out) to balance forward and backward (Glorot & Bengio 2010), 2/fan_in for ReLU
(He et al. 2015, arXiv:1502.01852); or orthogonal matrices, which preserve norms exactly
(Saxe et al. 2014, arXiv:1312.6120).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from deepstrata.errors import UserError

Scheme = Literal["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "he", "orthogonal", "lecun_normal", "normal"]
Nonlinearity = Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu"]

_Init = Callable[[torch.Tensor, str, float, torch.Generator], None]


def _gain(nonlinearity: str) -> float:
    return nn.init.calculate_gain(nonlinearity)


INITIALISERS: dict[str, _Init] = {
    "xavier_uniform": lambda w, nl, std, g: nn.init.xavier_uniform_(w, gain=_gain(nl), generator=g),
    "xavier_normal": lambda w, nl, std, g: nn.init.xavier_normal_(w, gain=_gain(nl), generator=g),
    "kaiming_uniform": lambda w, nl, std, g: nn.init.kaiming_uniform_(w, nonlinearity=nl, generator=g),
    "kaiming_normal": lambda w, nl, std, g: nn.init.kaiming_normal_(w, nonlinearity=nl, generator=g),
    "he": lambda w, nl, std, g: nn.init.kaiming_normal_(w, nonlinearity=nl, generator=g),
    "orthogonal": lambda w, nl, std, g: nn.init.orthogonal_(w, gain=_gain(nl), generator=g),
    "lecun_normal": lambda w, nl, std, g: nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
    "normal": lambda w, nl, std, g: nn.init.normal_(w, std=std, generator=g),
}

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def init_weights(
    model: nn.Module,
    scheme: Scheme,
    *,
    nonlinearity: Nonlinearity = "relu",
    std: float = 0.02,
    zero_bias: bool = True,
    seed: int = 0,
) -> nn.Module:
    """Re-initialise every Linear/Conv weight of `model` with `scheme` (biases to zero); returns `model`.

    `nonlinearity` sets the gain (ReLU: sqrt 2); `std` is used by the plain "normal" scheme only.
    """
    init = INITIALISERS.get(scheme)
    if init is None:
        from deepstrata.errors import did_you_mean

        raise UserError(f"unknown weight init '{scheme}'{did_you_mean(scheme, list(INITIALISERS))} (choices: {', '.join(INITIALISERS)})")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LAYERS):
                init(module.weight, nonlinearity, std, generator)
                if zero_bias and module.bias is not None:
                    module.bias.zero_()
    return model
