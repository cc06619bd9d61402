"""A small VGG-style convolutional network for small images.

Problem: fully connected layers ignore spatial structure and need a weight per pixel and unit.
Idea: stacks of 3x3 convolutions share local filters across the image (translation
equivariance), pooling halves the resolution between stages, and a linear head classifies
the pooled features. (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks".)
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.norms import ConvNorm, conv_norm
from deepstrata.registry import register_model


class SmallCNN(Backbone):
    """Conv stages of two 3x3 conv-norm-ReLU layers each, max-pooling between stages.

    Stage i (for `forward_intermediates`) is the output of the i-th stage's last ReLU, before
    the max-pooling that follows it.
    """

    feature_format = "NCHW"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 8,
        widths: tuple[int, ...] = (32, 64),
        norm: ConvNorm = "batch",
        dropout: float = 0.25,
        conv_widths: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if conv_widths is not None and len(conv_widths) != 2 * len(widths):
            raise ConfigError(f"SmallCNN: conv_widths gives one width per convolution, 2 per stage: {2 * len(widths)} for widths={list(widths)}, got {list(conv_widths)}")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index in `features` of each stage's last ReLU
        channels = in_channels
        per_conv = iter(conv_widths) if conv_widths is not None else iter(w for w in widths for _ in range(2))
        for i in range(len(widths)):
            for _ in range(2):
                width = next(per_conv)  # a channel-pruned model has its own width per convolution
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=norm == "none"), conv_norm(norm, width), nn.ReLU()]
                channels = width
            self.stage_ends.append(len(layers) - 1)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, widths[-1], H / 2^(stages-1), W / 2^(stages-1)) feature map."""
        check_input("SmallCNN.features", x, (None, self.in_channels, None, None))
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, widths[-1], h, w) -> global average pool -> dropout -> (N, widths[-1]) -> head."""
        x = self.dropout(self.pool(features).flatten(1))
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return [self.features[i] for i in self.stage_ends]


@register_model("small_cnn", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10}})
def small_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    widths: list[int] = [32, 64],  # noqa: B006 - copied into a tuple, never mutated
    norm: ConvNorm = "batch",
    dropout: float = 0.25,
    conv_widths: list[int] | None = None,
) -> SmallCNN:
    """Small VGG-style CNN: stages of two 3x3 conv-norm-ReLU layers, max-pool between stages.

    conv_widths: one width per convolution (2 per stage), overriding `widths` (a channel-pruned model).
    """
    per_conv = tuple(conv_widths) if conv_widths is not None else None
    return SmallCNN(in_channels=in_channels, num_classes=num_classes, widths=tuple(widths), norm=norm, dropout=dropout, conv_widths=per_conv)
