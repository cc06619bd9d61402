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
from deepstrata.models.base import Backbone, check_input
from deepstrata.models.cnn import Norm, norm_layer
from deepstrata.models.mlp import ACTIVATIONS
from deepstrata.registry import register_model

Pool = Literal["max", "avg"]
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet5(Backbone):
    """conv5x5(pad 2) -> pool -> conv5x5 -> pool -> flatten -> FC -> FC -> linear head."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        channels: tuple[int, int] = (6, 16),
        hidden: tuple[int, ...] = (120, 84),
        activation: Literal["relu", "tanh", "gelu", "silu"] = "relu",
        pool: Pool = "max",
        norm: Norm = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(channels) != 2:
            raise ConfigError(f"LeNet5 has two convolution stages; channels must hold 2 widths, got {list(channels)}")
        side = (image_size // 2 - 4) // 2  # conv1 keeps the size (padding 2), pool /2, conv2 -4, pool /2
        if side < 1:
            raise ConfigError(f"LeNet5 needs image_size >= 12 (two 5x5 convolutions and two poolings), got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        act = ACTIVATIONS[activation]
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2, bias=norm == "none"),
            norm_layer(norm, c1),
            act(),
            POOLS[pool](2),
            nn.Conv2d(c1, c2, 5, bias=norm == "none"),
            norm_layer(norm, c2),
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
        """(N, C, S, S) images -> (N, hidden[-1]) features (the 84 units of the paper)."""
        check_input("LeNet5.features", x, (None, self.in_channels, self.image_size, self.image_size))
        return self.classifier(self.features(x))


@register_model("lenet5", example={"input_shape": [1, 28, 28], "kwargs": {"num_classes": 10}})
def lenet5(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    channels: list[int] = [6, 16],  # noqa: B006 - copied into a tuple, never mutated
    hidden: list[int] = [120, 84],  # noqa: B006
    activation: Literal["relu", "tanh", "gelu", "silu"] = "relu",
    pool: Pool = "max",
    norm: Norm = "none",
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
