"""Activation functions by name, for models whose recipes choose one.

Problem: without a non-linearity between them, stacked affine layers collapse into one affine
map; which non-linearity trains best depends on depth, normalisation and data.
Idea: one name-to-module table shared by every model that lets a recipe choose (`activation:
gelu`), so the names and the modules they mean are the same everywhere: ReLU (Nair & Hinton
2010), GELU (Hendrycks & Gimpel 2016), SiLU (Elfwing et al. 2018), tanh, sigmoid, leaky ReLU.

Activations with parameters are chosen by a mapping instead of a name, `activation: {name:
tempered_sigmoid, scale: 2, temperature: 2, offset: 1}`. The tempered sigmoid
phi(x) = s * sigmoid(T x) - o (Papernot et al. 2021, "Tempered Sigmoid Activations for Deep
Learning with Differential Privacy") answers a problem of DP-SGD: clipping bounds every
example's gradient, and an unbounded activation (ReLU) lets activations, and with them the
gradients, grow until most of them are clipped, each by its own factor, which biases their sum.
A bounded activation keeps them small; s, T and o set its range (-o, s - o), its slope s T / 4
at 0 and its centre. tanh is the member s = 2, T = 2, o = 1 (tanh x = 2 sigmoid(2x) - 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn
from typing_extensions import Required, TypedDict

Activation = Literal["relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


class TemperedSigmoid(nn.Module):
    """phi(x) = scale * sigmoid(temperature * x) - offset, elementwise; any shape in, the same out.

    `temperature` is the paper's inverse temperature T: a larger T makes the step sharper.
    """

    def __init__(self, *, scale: float = 2.0, temperature: float = 2.0, offset: float = 1.0):
        super().__init__()
        self.scale, self.temperature, self.offset = float(scale), float(temperature), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.temperature * x) - self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}, temperature={self.temperature:g}, offset={self.offset:g}"


class TemperedSigmoidSpec(TypedDict, total=False):
    """A recipe's `activation: {name: tempered_sigmoid, scale: s, temperature: T, offset: o}` (tanh's values by default)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    name: Required[Literal["tempered_sigmoid"]]
    scale: Annotated[float, Field(gt=0)]
    temperature: Annotated[float, Field(gt=0)]
    offset: float


# The activations a recipe chooses by a mapping with a `name`, to the module it builds.
PARAMETRIC_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {"tempered_sigmoid": TemperedSigmoid}


def activation_factory(spec: str | Mapping[str, Any]) -> Callable[[], nn.Module]:
    """What builds a fresh activation module for `spec`: a name of ACTIVATIONS, or a mapping
    `{name: ..., **parameters}` of PARAMETRIC_ACTIVATIONS (as the model's factory validated it)."""
    if isinstance(spec, str):
        return ACTIVATIONS[spec]
    params = dict(spec)
    return partial(PARAMETRIC_ACTIVATIONS[params.pop("name")], **params)
