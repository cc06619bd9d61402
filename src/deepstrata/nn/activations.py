"""Activation functions by name, for models whose recipes choose one.

Problem: without a non-linearity between them, stacked affine layers collapse into one affine
map; which non-linearity trains best depends on depth, normalisation and data.
Idea: one name-to-module table shared by every model that lets a recipe choose (`activation:
gelu`), so the names and the modules they mean are the same everywhere: ReLU (Nair & Hinton
2010), GELU (Hendrycks & Gimpel 2016), SiLU (Elfwing et al. 2018), tanh, sigmoid, leaky ReLU.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Activation = Literal["relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
