"""VGG: depth from stacks of small 3x3 convolutions.

Problem: large convolution kernels (7x7, 11x11) are expensive and learn one linear filter per
receptive field, so earlier networks could not grow deep.
Idea: stack only 3x3 convolutions (two of them see 5x5, three see 7x7, with fewer parameters
and more non-linearities) in stages that double the width each time a pooling layer halves
the resolution. (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale
Image Recognition".) For small images, pooling stops once the map is 1x1 and the classifier
works on globally pooled features instead of the paper's 4096-wide FC layers.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.norms import ConvNorm, conv_norm
from deepstrata.nn.pooling import POOLS, Pool
from deepstrata.registry import register_model

# The paper's configurations (Table 1) as convolutions per stage; widths 64, 128, 256, 512, 512.
CONFIGS: dict[str, tuple[int, ...]] = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
PAPER_WIDTHS = (64, 128, 256, 512, 512)


class VGG(Backbone):
    """Stages of [3x3 conv-norm-ReLU] x n, each followed by a 2x pooling while the map is > 1x1.

    The stages of `forward_intermediates` are `self.stages`, each output taken before its pooling.
    """

    feature_format = "NCHW"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        stages: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128)),
        norm: ConvNorm = "batch",
        pool: Pool = "max",
        global_pool: Literal["avg", "max"] = "avg",
        hidden: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not stages or any(not s for s in stages):
            raise ConfigError(f"VGG needs at least one stage of at least one convolution, got {[list(s) for s in stages]}")
        self.in_channels = in_channels
        blocks: list[nn.Module] = []
        channels = in_channels
        for widths in stages:
            layers: list[nn.Module] = []
            for w in widths:
                layers += [nn.Conv2d(channels, w, 3, padding=1, bias=norm == "none"), conv_norm(norm, w), nn.ReLU(inplace=True)]
                channels = w
            blocks.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(blocks)
        self.downsample = POOLS[pool](2)
        self.global_pool = nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
        fc: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        if hidden:
            fc += [nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            channels = hidden
        self.classifier = nn.Sequential(*fc)
        self.head = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, stages[-1][-1], H', W'): the last stage's feature map."""
        check_input("VGG.stages", x, (None, self.in_channels, None, None))
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.stages) - 1 and min(x.shape[-2:]) >= 2:
                x = self.downsample(x)  # (N, C, H/2, W/2); skipped once the map is 1x1
        return x

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C, H', W') -> global pool -> dropout (-> hidden FC) -> (N, width) -> head."""
        x = self.classifier(self.global_pool(features))
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return list(self.stages)


@register_model("vgg", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "stages": [[8], [16, 16]]}})
def vgg(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    stages: list[list[int]] = [[32, 32], [64, 64], [128, 128]],  # noqa: B006 - copied, never mutated
    norm: ConvNorm = "batch",
    pool: Pool = "max",
    global_pool: Literal["avg", "max"] = "avg",
    hidden: int = 0,
    dropout: float = 0.0,
) -> VGG:
    """VGG-style network with explicit stages: [[32, 32], [64, 64]] = two stages of two 3x3 convs."""
    return VGG(
        in_channels=in_channels,
        num_classes=num_classes,
        stages=tuple(tuple(s) for s in stages),
        norm=norm,
        pool=pool,
        global_pool=global_pool,
        hidden=hidden,
        dropout=dropout,
    )


def _preset(config: str, *, in_channels: int, num_classes: int, width: int, norm: ConvNorm, pool: Pool, dropout: float) -> VGG:
    scale = width / 64
    stages = tuple((max(1, round(w * scale)),) * n for w, n in zip(PAPER_WIDTHS, CONFIGS[config]))
    return VGG(in_channels=in_channels, num_classes=num_classes, stages=stages, norm=norm, pool=pool, dropout=dropout)


@register_model("vgg11", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "width": 8}})
def vgg11(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 64, norm: ConvNorm = "batch", pool: Pool = "max", dropout: float = 0.0
) -> VGG:
    """VGG-11 (configuration A): 8 convolutions in 5 stages; `width` scales the paper's 64..512."""
    return _preset("vgg11", in_channels=in_channels, num_classes=num_classes, width=width, norm=norm, pool=pool, dropout=dropout)


@register_model("vgg16", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "width": 8}})
def vgg16(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 64, norm: ConvNorm = "batch", pool: Pool = "max", dropout: float = 0.0
) -> VGG:
    """VGG-16 (configuration D): 13 convolutions in 5 stages; `width` scales the paper's 64..512."""
    return _preset("vgg16", in_channels=in_channels, num_classes=num_classes, width=width, norm=norm, pool=pool, dropout=dropout)
