"""ResNet: residual connections make very deep networks trainable.

Problem: stacking more layers on a plain network makes even its *training* error worse: a
deep stack struggles to learn the identity map, and gradients fade through many layers.
Idea: each block learns a residual F(x) and outputs relu(x + F(x)); the identity path carries
signal and gradient unchanged, so a block that is not needed can shrink F towards zero.
(He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition".)

Parameter names follow torchvision/timm (`conv1`, `bn1`, `layer1.0.conv1`, `downsample.0`)
so state dicts map by renaming `fc` to `head`. For small images, `stem="conv3"` is one 3x3
convolution at full resolution and `stem="conv3_s2"` halves the resolution first (cheap on
28x28 MNIST); `stem="imagenet"` is the paper's 7x7/2 convolution plus 3x3/2 max-pooling.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.drop_path import DropPath
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.norms import ConvNorm, conv_norm
from deepstrata.registry import register_model

Stem = Literal["conv3", "conv3_s2", "imagenet"]


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; out = relu(shortcut(x) + bn2(conv2(relu(bn1(conv1(x))))))."""

    expansion = 1

    def __init__(self, cin: int, width: int, *, stride: int = 1, norm: ConvNorm = "batch", drop_path: float = 0.0, inner: tuple[int, ...] = ()):
        super().__init__()
        cout = width * self.expansion
        (mid,) = inner or (width,)  # the channels between conv1 and conv2 (fewer in a channel-pruned block)
        self.conv1 = conv3x3(cin, mid, stride)
        self.bn1 = conv_norm(norm, mid)
        self.conv2 = conv3x3(mid, cout)
        self.bn2 = conv_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride, norm)
        self.drop_path = DropPath(drop_path)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(shortcut + self.drop_path(self.residual(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as in torchvision's "ResNet v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, width: int, *, stride: int = 1, norm: ConvNorm = "batch", drop_path: float = 0.0, inner: tuple[int, ...] = ()):
        super().__init__()
        cout = width * self.expansion
        mid1, mid2 = inner or (width, width)  # the outputs of conv1 and conv2 (fewer in a channel-pruned block)
        self.conv1 = nn.Conv2d(cin, mid1, 1, bias=False)
        self.bn1 = conv_norm(norm, mid1)
        self.conv2 = conv3x3(mid1, mid2, stride)
        self.bn2 = conv_norm(norm, mid2)
        self.conv3 = nn.Conv2d(mid2, cout, 1, bias=False)
        self.bn3 = conv_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride, norm)
        self.drop_path = DropPath(drop_path)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(shortcut + self.drop_path(self.residual(x)))


def _shortcut(cin: int, cout: int, stride: int, norm: ConvNorm) -> nn.Module | None:
    """Identity when shapes match, else a strided 1x1 projection (the paper's option B)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), conv_norm(norm, cout))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(Backbone):
    """stem -> layer1..layerK (stage i at width widths[i], stride 2 from the second stage) -> pool -> head.

    The stages of `forward_intermediates` are the residual stages layer1..layerK (not the stem);
    the last one's output is `forward_features`.
    """

    feature_format = "NCHW"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        block: Literal["basic", "bottleneck"] = "basic",
        layers: tuple[int, ...] = (2, 2, 2, 2),
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: Stem = "conv3",
        norm: ConvNorm = "batch",
        global_pool: Literal["avg", "max"] = "avg",
        zero_init_residual: bool = False,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        inner_widths: tuple[tuple[int, ...], ...] | None = None,
    ):
        super().__init__()
        if len(layers) != len(widths) or not layers:
            raise ConfigError(f"ResNet needs one width per stage: layers={list(layers)} but widths={list(widths)}")
        per_block = 1 if block == "basic" else 2
        if inner_widths is not None and (len(inner_widths) != sum(layers) or any(len(w) != per_block for w in inner_widths)):
            raise ConfigError(f"ResNet inner_widths gives each of the {sum(layers)} blocks its {per_block} inner width(s), got {[list(w) for w in inner_widths]}")
        if norm == "none":
            raise ConfigError("ResNet blocks need a normalisation layer; choose norm batch, group or layer")
        self.in_channels = in_channels
        block_cls = BLOCKS[block]
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(in_channels, stem_width, stride=2 if stem == "conv3_s2" else 1)
            self.maxpool = nn.Identity()
        self.bn1 = conv_norm(norm, stem_width)
        self.relu = nn.ReLU(inplace=True)
        total, seen = sum(layers), 0
        channels = stem_width
        for i, (n, width) in enumerate(zip(layers, widths)):
            stage = []
            for j in range(n):
                rate = drop_path * seen / max(1, total - 1)  # stochastic depth grows linearly with depth
                inner = inner_widths[seen] if inner_widths is not None else ()
                stage.append(block_cls(channels, width, stride=2 if (i > 0 and j == 0) else 1, norm=norm, drop_path=rate, inner=inner))
                channels = width * block_cls.expansion
                seen += 1
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_stages = len(layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            self.zero_init_residual()

    def zero_init_residual(self) -> None:
        """Set every block's last norm scale to 0: each block starts as the identity (Goyal et al. 2017)."""
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                norm = m.last_norm()
                if isinstance(norm, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.zeros_(norm.weight)

    def feature_stages(self) -> list[nn.Module]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, widths[-1] * expansion, H', W'): the last stage's feature map."""
        check_input("ResNet.conv1", x, (None, self.in_channels, None, None))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, widths[0], H', W')
        for stage in self.feature_stages():
            x = stage(x)
        return x

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C, H', W') -> global pool -> dropout -> (N, C) -> head."""
        x = self.dropout(self.global_pool(features).flatten(1))
        return x if pre_logits else self.head(x)


def _resnet(block: Literal["basic", "bottleneck"], layers: tuple[int, ...], width: int, **kwargs) -> ResNet:
    widths = tuple(width * 2**i for i in range(len(layers)))
    return ResNet(block=block, layers=layers, widths=widths, **kwargs)


_EX = {"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "width": 4}}


@register_model("resnet", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "layers": [1, 1], "widths": [4, 8]}})
def resnet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    block: Literal["basic", "bottleneck"] = "basic",
    layers: list[int] = [1, 1, 1],  # noqa: B006 - copied into a tuple, never mutated
    widths: list[int] = [32, 64, 128],  # noqa: B006
    stem: Stem = "conv3",
    norm: ConvNorm = "batch",
    global_pool: Literal["avg", "max"] = "avg",
    zero_init_residual: bool = False,
    drop_path: float = 0.0,
    dropout: float = 0.0,
    inner_widths: list[list[int]] | None = None,
) -> ResNet:
    """ResNet with explicit stages: `layers` blocks per stage at `widths`, stride 2 from stage 2.

    inner_widths: per block, in order, its inner width(s) (basic: [conv1 out]; bottleneck: [conv1
    out, conv2 out]), overriding `widths` inside the block (a channel-pruned model).
    """
    inner = tuple(tuple(w) for w in inner_widths) if inner_widths is not None else None
    return ResNet(
        in_channels=in_channels, num_classes=num_classes, block=block, layers=tuple(layers), widths=tuple(widths), stem=stem,
        norm=norm, global_pool=global_pool, zero_init_residual=zero_init_residual, drop_path=drop_path, dropout=dropout,
        inner_widths=inner,
    )  # fmt: skip


@register_model("resnet20", example=_EX)
def resnet20(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 16, stem: Stem = "conv3", norm: ConvNorm = "batch",
    zero_init_residual: bool = False, drop_path: float = 0.0,
) -> ResNet:  # fmt: skip
    """ResNet-20 for small images (He et al. 2016, sec. 4.2): 3 stages of 3 basic blocks, widths 16-32-64."""
    return _resnet("basic", (3, 3, 3), width, in_channels=in_channels, num_classes=num_classes, stem=stem, norm=norm,
                   zero_init_residual=zero_init_residual, drop_path=drop_path)  # fmt: skip


@register_model("resnet18", example=_EX)
def resnet18(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 64, stem: Stem = "conv3", norm: ConvNorm = "batch",
    zero_init_residual: bool = False, drop_path: float = 0.0,
) -> ResNet:  # fmt: skip
    """ResNet-18: 4 stages of 2 basic blocks; `stem="imagenet"` is the paper's 7x7/2 + max-pool."""
    return _resnet("basic", (2, 2, 2, 2), width, in_channels=in_channels, num_classes=num_classes, stem=stem, norm=norm,
                   zero_init_residual=zero_init_residual, drop_path=drop_path)  # fmt: skip


@register_model("resnet34", example=_EX)
def resnet34(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 64, stem: Stem = "conv3", norm: ConvNorm = "batch",
    zero_init_residual: bool = False, drop_path: float = 0.0,
) -> ResNet:  # fmt: skip
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return _resnet("basic", (3, 4, 6, 3), width, in_channels=in_channels, num_classes=num_classes, stem=stem, norm=norm,
                   zero_init_residual=zero_init_residual, drop_path=drop_path)  # fmt: skip


@register_model("resnet50", example=_EX)
def resnet50(
    *, in_channels: int = 1, num_classes: int = 10, width: int = 64, stem: Stem = "conv3", norm: ConvNorm = "batch",
    zero_init_residual: bool = False, drop_path: float = 0.0,
) -> ResNet:  # fmt: skip
    """ResNet-50: bottleneck blocks (3, 4, 6, 3), output width 4 x 8 x `width`."""
    return _resnet("bottleneck", (3, 4, 6, 3), width, in_channels=in_channels, num_classes=num_classes, stem=stem, norm=norm,
                   zero_init_residual=zero_init_residual, drop_path=drop_path)  # fmt: skip
