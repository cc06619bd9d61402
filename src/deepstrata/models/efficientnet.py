"""EfficientNet: scale depth, width and resolution together, by one coefficient.

Problem: networks are usually enlarged along one axis (deeper, wider, or larger images), and
each axis alone saturates quickly, wasting compute.
Idea: build from cheap MBConv blocks (1x1 expand, depthwise conv, squeeze-and-excitation, 1x1
project, residual) and grow all three axes at once, depth by alpha^phi, width by beta^phi and
resolution by gamma^phi with alpha * beta^2 * gamma^2 ~= 2, so each step of phi roughly doubles
the FLOPs. (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks"; MBConv from Sandler et al. 2018; SE from Hu et al. 2018.)

`phi=0` with `stem_stride=2` and 224x224 inputs is EfficientNet-B0. For small images use
`stem_stride=1` and a smaller `base_width`; setting `base_resolution` makes the model resize its
input to round(base_resolution * gamma^phi), so one coefficient really scales all three axes.
(The published B1-B7 use hand-rounded multipliers; `width_mult`/`depth_mult` reproduce them.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.drop_path import DropPath
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.norms import conv_norm
from deepstrata.nn.squeeze_excitation import SqueezeExcitation
from deepstrata.registry import register_model

Norm = Literal["batch", "group", "layer"]


@dataclass(frozen=True)
class StageSpec:
    expand_ratio: int
    kernel: int
    stride: int
    channels: int
    repeats: int


# EfficientNet-B0 (Table 1 of the paper): stage 1 is the stem; stage 9 is the 1x1 head conv.
B0_STAGES = (
    StageSpec(1, 3, 1, 16, 1),
    StageSpec(6, 3, 2, 24, 2),
    StageSpec(6, 5, 2, 40, 2),
    StageSpec(6, 3, 2, 80, 3),
    StageSpec(6, 5, 1, 112, 3),
    StageSpec(6, 5, 2, 192, 4),
    StageSpec(6, 3, 1, 320, 1),
)
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's grid-searched depth, width, resolution bases


def compound_scaling(phi: float, *, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers alpha^phi, beta^phi, gamma^phi (eq. 3 of the paper)."""
    return alpha**phi, beta**phi, gamma**phi


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below (as in B0)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_act(cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, norm: Norm = "batch", act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), conv_norm(norm, cout)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> SE -> 1x1 project (linear), + x when shapes match."""

    def __init__(
        self, cin: int, cout: int, *, expand_ratio: int, kernel: int, stride: int, se_ratio: float = 0.25,
        norm: Norm = "batch", drop_path: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        hidden = cin * expand_ratio
        self.use_residual = stride == 1 and cin == cout
        self.expand = conv_norm_act(cin, hidden, 1, norm=norm) if expand_ratio != 1 else nn.Identity()
        self.depthwise = conv_norm_act(hidden, hidden, kernel, stride=stride, groups=hidden, norm=norm)
        # SE bottleneck is a fraction of the block's *input* width, as in the reference implementation.
        self.se = SqueezeExcitation(hidden, max(1, int(cin * se_ratio))) if se_ratio > 0 else nn.Identity()
        self.project = conv_norm_act(hidden, cout, 1, norm=norm, act=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop_path(out) if self.use_residual else out


class EfficientNet(Backbone):
    """stem 3x3 -> MBConv stages (scaled) -> 1x1 conv -> global pool -> dropout -> head.

    The stages of `forward_intermediates` are the MBConv stages (the output of each stage's last
    block) and then the 1x1 head convolution, whose output is `forward_features`.
    """

    feature_format = "NCHW"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        phi: float = 0.0,
        width_mult: float | None = None,
        depth_mult: float | None = None,
        base_width: float = 1.0,
        base_resolution: int | None = None,
        stem_stride: int = 2,
        stages: tuple[StageSpec, ...] = B0_STAGES,
        head_channels: int = 1280,
        se_ratio: float = 0.25,
        norm: Norm = "batch",
        drop_path: float = 0.2,
        dropout: float = 0.2,
    ):
        super().__init__()
        d, w, r = compound_scaling(phi)
        depth_mult = d if depth_mult is None else depth_mult
        width_mult = base_width * (w if width_mult is None else width_mult)
        if depth_mult <= 0 or width_mult <= 0:
            raise ConfigError(f"EfficientNet multipliers must be positive, got depth {depth_mult}, width {width_mult}")
        self.in_channels = in_channels
        self.resolution = None if base_resolution is None else round(base_resolution * r)
        ch = lambda c: make_divisible(c * width_mult)  # noqa: E731
        stem = ch(32)
        self.stem = conv_norm_act(in_channels, stem, 3, stride=stem_stride, norm=norm)
        repeats = [math.ceil(s.repeats * depth_mult) for s in stages]
        total, seen = sum(repeats), 0
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index in `blocks` of each stage's last block
        cin = stem
        for spec, n in zip(stages, repeats):
            cout = ch(spec.channels)
            for j in range(n):
                rate = drop_path * seen / total  # stochastic depth grows linearly with depth, as in the paper's code
                blocks.append(
                    MBConv(cin, cout, expand_ratio=spec.expand_ratio, kernel=spec.kernel, stride=spec.stride if j == 0 else 1,
                           se_ratio=se_ratio, norm=norm, drop_path=rate)  # fmt: skip
                )
                cin, seen = cout, seen + 1
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.Sequential(*blocks)
        head = ch(head_channels) if width_mult > 1 else head_channels  # B0..B7: the head widens, never shrinks
        self.conv_head = conv_norm_act(cin, head, 1, norm=norm)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(head, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, head_channels, H', W'); resized to `resolution` first when one is set."""
        check_input("EfficientNet.stem", x, (None, self.in_channels, None, None))
        if self.resolution is not None and tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return self.conv_head(self.blocks(self.stem(x)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, head_channels, H', W') -> global average pool -> dropout -> (N, head_channels) -> head."""
        x = self.dropout(self.pool(features).flatten(1))
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return [self.blocks[i] for i in self.stage_ends] + [self.conv_head]


@register_model("efficientnet", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "base_width": 0.25, "depth_mult": 0.3, "head_channels": 32}})
def efficientnet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    phi: float = 0.0,
    base_width: float = 1.0,
    width_mult: float | None = None,
    depth_mult: float | None = None,
    base_resolution: int | None = None,
    stem_stride: int = 2,
    head_channels: int = 1280,
    se_ratio: float = 0.25,
    norm: Norm = "batch",
    drop_path: float = 0.2,
    dropout: float = 0.2,
) -> EfficientNet:
    """EfficientNet-B0 stages scaled by one coefficient `phi` (depth 1.2^phi, width 1.1^phi, resolution 1.15^phi).

    `base_width` shrinks the B0 widths for small data (0.25 -> stem 8 channels); `width_mult`/
    `depth_mult` override the compound rule; `base_resolution` turns on the resolution axis.
    """
    return EfficientNet(
        in_channels=in_channels, num_classes=num_classes, phi=phi, base_width=base_width, width_mult=width_mult,
        depth_mult=depth_mult, base_resolution=base_resolution, stem_stride=stem_stride, head_channels=head_channels,
        se_ratio=se_ratio, norm=norm, drop_path=drop_path, dropout=dropout,
    )  # fmt: skip


@register_model("efficientnet_b0", example={"input_shape": [3, 32, 32], "kwargs": {"num_classes": 10}})
def efficientnet_b0(*, in_channels: int = 3, num_classes: int = 1000, drop_path: float = 0.2, dropout: float = 0.2) -> EfficientNet:
    """EfficientNet-B0 exactly as in the paper (5.3M parameters with 1000 classes), 224x224 inputs."""
    return EfficientNet(in_channels=in_channels, num_classes=num_classes, drop_path=drop_path, dropout=dropout)
