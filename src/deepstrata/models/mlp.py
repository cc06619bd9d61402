"""The multi-layer perceptron: the first deep network.

Problem: a linear model can only draw straight decision boundaries.
Idea: stack affine layers with a non-linearity between them; with enough hidden units the
composition approximates any continuous function (Cybenko 1989, Hornik 1991). The notes'
784-128-10 network is `mlp(in_features=784, hidden=[128], num_classes=10)`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.models.base import Backbone
from deepstrata.nn.activations import Activation, TemperedSigmoidSpec, activation_factory
from deepstrata.nn.input_checks import check_input
from deepstrata.registry import register_model


class MLP(Backbone):
    """Flatten, then [Linear -> norm -> activation -> dropout] x len(hidden), then a linear head.

    There is no spatial map to pool: `forward_features` is the last hidden layer's (N, hidden[-1])
    vector, and the stages of `forward_intermediates` are the hidden layers.
    """

    feature_format = "NC"

    def __init__(
        self,
        *,
        in_features: int,
        num_classes: int,
        hidden: tuple[int, ...] = (128,),
        activation: Activation | TemperedSigmoidSpec = "relu",
        norm: Literal["none", "batch", "layer"] = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_features = in_features
        act = activation_factory(activation)  # a name, or {name: tempered_sigmoid, scale, temperature, offset}
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(h))
            elif norm == "layer":
                layers.append(nn.LayerNorm(h))
            layers += [act(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.stage_ends = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]  # each hidden layer's last module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) with prod(...) == in_features -> (N, hidden[-1])."""
        x = x.flatten(1)  # (N, in_features)
        check_input("MLP.body", x, (None, self.in_features))
        return self.body(x)

    def feature_stages(self) -> list[nn.Module]:
        return [self.body[i] for i in self.stage_ends]


@register_model("mlp", example={"input_shape": [1, 8, 8], "kwargs": {"in_features": 64, "num_classes": 10}})
def mlp(
    *,
    in_features: int,
    num_classes: int,
    hidden: list[int] = [128],  # noqa: B006 - copied into a tuple, never mutated
    activation: Activation | TemperedSigmoidSpec = "relu",
    norm: Literal["none", "batch", "layer"] = "none",
    dropout: float = 0.0,
) -> MLP:
    """Multi-layer perceptron: flatten, hidden Linear-activation layers, linear head."""
    return MLP(
        in_features=in_features, num_classes=num_classes, hidden=tuple(hidden), activation=activation, norm=norm, dropout=dropout
    )
