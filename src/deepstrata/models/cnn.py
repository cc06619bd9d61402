"""A small VGG-style convolutional network for small images.

Problem: fully connected layers ignore spatial structure and need a weight per pixel and unit.
Idea: stacks of 3x3 convolutions share local filters across the image (translation
equivariance), pooling halves the resolution between stages, and a linear head classifies
the pooled features. (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks".)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.models.base import Backbone, check_input
from deepstrata.registry import register_model

Norm = Literal["batch", "group", "layer", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """A normalisation layer over `channels` feature maps."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = LayerNorm over (C, H, W)
    return nn.Identity()


class SmallCNN(Backbone):
    """Conv stages of two 3x3 conv-norm-ReLU layers each, max-pooling between stages."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 8,
        widths: tuple[int, ...] = (32, 64),
        norm: Norm = "batch",
        dropout: float = 0.25,
    ):
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(widths):
            for _ in range(2):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=norm == "none"), norm_layer(norm, width), nn.ReLU()]
                channels = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, widths[-1]) pooled features."""
        check_input("SmallCNN.features", x, (None, self.in_channels, None, None))
        x = self.features(x)  # (N, widths[-1], H / 2^(stages-1), W / 2^(stages-1))
        return self.dropout(self.pool(x).flatten(1))


@register_model("small_cnn", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10}})
def small_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    widths: list[int] = [32, 64],  # noqa: B006 - copied into a tuple, never mutated
    norm: Norm = "batch",
    dropout: float = 0.25,
) -> SmallCNN:
    """Small VGG-style CNN: stages of two 3x3 conv-norm-ReLU layers, max-pool between stages."""
    return SmallCNN(in_channels=in_channels, num_classes=num_classes, widths=tuple(widths), norm=norm, dropout=dropout)
