"""Deep MLPs with a chosen initialisation: plain, BatchNorm, LayerNorm or residual.

Problem: whether a deep network trains at all depends on how the size of activations and
gradients changes from layer to layer, which initialisation, normalisation and skip connections
each control. Idea: one MLP builder exposing all three knobs: naive init (uniform +-1/sqrt(fan_in),
the "standard" heuristic Glorot & Bengio 2010 criticise), Xavier/Glorot (variance 2/(fan_in +
fan_out)), He/Kaiming (2/fan_in, for ReLU; He et al. 2015), optional BatchNorm (Ioffe & Szegedy
2015) or LayerNorm (Ba et al. 2016), or residual blocks h + act(Linear(h)) / sqrt(depth)
(He et al. 2016; the 1/sqrt(depth) branch scale keeps the forward variance bounded, as in
Hanin & Rolnick 2018 and Fixup, Zhang et al. 2019).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Activation = Literal["sigmoid", "tanh", "relu", "gelu"]
Init = Literal["naive", "xavier", "he"]
Variant = Literal["plain", "batch", "layer", "residual"]
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
INITS = ("naive", "xavier", "he")
VARIANTS = ("plain", "batch", "layer", "residual")


def init_linear(layer: nn.Linear, init: Init, generator: torch.Generator) -> None:
    fan_out, fan_in = layer.weight.shape
    with torch.no_grad():
        if init == "naive":
            bound = 1 / math.sqrt(fan_in)
            layer.weight.uniform_(-bound, bound, generator=generator)
        elif init == "xavier":
            layer.weight.normal_(0, math.sqrt(2 / (fan_in + fan_out)), generator=generator)
        elif init == "he":
            layer.weight.normal_(0, math.sqrt(2 / fan_in), generator=generator)
        else:
            raise ValueError(f"unknown init '{init}' (choices: {', '.join(INITS)})")
        layer.bias.zero_()


class DeepMLP(nn.Module):
    """Input Linear, then depth - 1 hidden blocks, then a linear head; `linears` in depth order.

    Every hidden Linear (input projection first, head last) is in `self.linears`, so per-layer
    gradient norms can be read in order from the first layer to the last.
    """

    def __init__(self, *, in_features: int, num_classes: int, depth: int, width: int = 64,
                 activation: Activation = "relu", init: Init = "he", variant: Variant = "plain", seed: int = 0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"DeepMLP: depth must be >= 1, got {depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"DeepMLP: unknown activation '{activation}' (choices: {', '.join(ACTIVATIONS)})")
        if variant not in VARIANTS:
            raise ValueError(f"DeepMLP: unknown variant '{variant}' (choices: {', '.join(VARIANTS)})")
        self.in_features = in_features
        self.variant = variant
        self.act = ACTIVATIONS[activation]()
        self.branch_scale = 1 / math.sqrt(max(depth - 1, 1))
        self.linears = nn.ModuleList([nn.Linear(in_features, width)] + [nn.Linear(width, width) for _ in range(depth - 1)] + [nn.Linear(width, num_classes)])
        norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(variant)
        self.norms = nn.ModuleList([norm(width) if norm else nn.Identity() for _ in range(depth)])
        gen = torch.Generator().manual_seed(seed)
        for layer in self.linears:
            init_linear(layer, init, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) with prod(...) == in_features -> (N, num_classes) logits."""
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"DeepMLP.linears[0] expected (N, {self.in_features}) input, got {tuple(x.shape)}")
        h = self.act(self.norms[0](self.linears[0](x)))
        for linear, norm in zip(self.linears[1:-1], self.norms[1:]):
            out = self.act(norm(linear(h)))
            h = h + self.branch_scale * out if self.variant == "residual" else out
        return self.linears[-1](h)

    def layer_grad_norms(self) -> list[float]:
        """||dL/dW|| for every Linear, first layer to head (after a backward pass)."""
        return [float(l.weight.grad.norm()) if l.weight.grad is not None else 0.0 for l in self.linears]
