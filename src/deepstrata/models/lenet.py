"""LeNet-5: the convolutional network that first read handwritten digits at scale.

Problem: a fully connected network sees a digit as 784 unrelated numbers; it must relearn
every stroke detector at every position and needs far more parameters than the data supports.
Idea: two 5x5 convolution + subsampling stages learn local stroke detectors shared across the
image and build a small, shift-tolerant feature map; two fully connected layers (120, 84)
then classify it. (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition".) The defaults are the paper's widths with the modern ReLU and max-pool;
`activation="tanh", pool="avg", norm="none"` is close to the 1998 original.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.activations import TemperedSigmoidSpec, activation_factory
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.norms import ConvNorm, conv_norm
from deepstrata.nn.pooling import POOLS, Pool
from deepstrata.registry import register_model


class LeNet5(Backbone):
    """conv5x5(pad 2) -> pool -> conv5x5 -> pool -> flatten -> FC -> FC -> linear head.

    `forward_features` is the second stage's pooled map (16@5x5 on 28x28 inputs); the head
    flattens it through the fully connected layers, whose last output (the paper's 84 units)
    is the pre-logits vector. The two stages are the convolution stages, each after its pooling.
    """

    feature_format = "NCHW"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        channels: tuple[int, int] = (6, 16),
        hidden: tuple[int, ...] = (120, 84),
        activation: Literal["relu", "tanh", "gelu", "silu"] | TemperedSigmoidSpec = "relu",
        pool: Pool = "max",
        norm: ConvNorm = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(channels) != 2:
            raise ConfigError(f"LeNet5 has two convolution stages; channels must hold 2 widths, got {list(channels)}")
        side = (image_size // 2 - 4) // 2  # conv1 keeps the size (padding 2), pool /2, conv2 -4, pool /2
        if side < 1:
            raise ConfigError(f"LeNet5 needs image_size >= 12 (two 5x5 convolutions and two poolings), got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        act = activation_factory(activation)  # a name, or {name: tempered_sigmoid, scale, temperature, offset}
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2, bias=norm == "none"),
            conv_norm(norm, c1),
            act(),
            POOLS[pool](2),
            nn.Conv2d(c1, c2, 5, bias=norm == "none"),
            conv_norm(norm, c2),
            act(),
            POOLS[pool](2),
        )
        layers: list[nn.Module] = [nn.Flatten()]
        width = c2 * side * side  # 16 * 5 * 5 = 400 on 28x28 inputs
        for h in hidden:
            layers += [nn.Linear(width, h), act(), nn.Dropout(dropout)]
            width = h
        self.classifier = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) images -> (N, channels[1], side, side) feature map, side = (S // 2 - 4) // 2."""
        check_input("LeNet5.features", x, (None, self.in_channels, self.image_size, self.image_size))
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, channels[1], side, side) -> flatten -> FC layers -> (N, hidden[-1]) -> head."""
        x = self.classifier(features)
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return [self.features[3], self.features[7]]  # the two pooling layers


@register_model("lenet5", example={"input_shape": [1, 28, 28], "kwargs": {"num_classes": 10}})
def lenet5(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    channels: list[int] = [6, 16],  # noqa: B006 - copied into a tuple, never mutated
    hidden: list[int] = [120, 84],  # noqa: B006
    activation: Literal["relu", "tanh", "gelu", "silu"] | TemperedSigmoidSpec = "relu",
    pool: Pool = "max",
    norm: ConvNorm = "none",
    dropout: float = 0.0,
) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998): two 5x5 conv + pool stages, FC 120-84, linear head."""
    return LeNet5(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=tuple(channels),  # type: ignore[arg-type]
        hidden=tuple(hidden),
        activation=activation,
        pool=pool,
        norm=norm,
        dropout=dropout,
    )
