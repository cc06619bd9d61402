"""EfficientNet: B0 equals torchvision's parameter count; one coefficient scales depth, width and
resolution; each step of phi roughly doubles the FLOPs; MBConv's residual and SE."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.efficientnet import ALPHA, BETA, GAMMA, MBConv, compound_scaling, efficientnet, efficientnet_b0, make_divisible
from deepstrata.nn.squeeze_excitation import SqueezeExcitation


def test_b0_matches_torchvision_parameter_count() -> None:
    with torch.device("meta"):
        model = efficientnet_b0()
    assert sum(p.numel() for p in model.parameters()) == 5_288_548  # torchvision.models.efficientnet_b0()
    assert len(model.blocks) == 16 and model.num_features == 1280


def test_the_constraint_on_the_bases() -> None:
    # alpha * beta^2 * gamma^2 ~= 2 (paper, eq. 3): FLOPs grow by about 2^phi.
    assert abs(ALPHA * BETA**2 * GAMMA**2 - 2) < 0.1
    assert compound_scaling(2.0) == pytest.approx((1.44, 1.21, 1.3225))


def macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of one forward pass over conv and linear layers."""
    total = 0

    def hook(m, _inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def test_one_coefficient_scales_all_three_axes_and_doubles_flops_per_step() -> None:
    kw = dict(in_channels=3, num_classes=10, base_resolution=64, stem_stride=2, base_width=0.5, head_channels=320)
    b0, b2 = efficientnet(phi=0, **kw), efficientnet(phi=2, **kw)
    assert (b0.resolution, b2.resolution) == (64, round(64 * GAMMA**2))  # resolution axis
    assert len(b2.blocks) > len(b0.blocks)  # depth axis
    assert b2.stem[0].out_channels > b0.stem[0].out_channels  # width axis
    ratio = macs(b2, 64) / macs(b0, 64)  # the model resizes its input itself
    assert 2.5 < ratio < 6.0, ratio  # ~2^2 = 4, up to the rounding of channels and repeats


def test_make_divisible_rounds_to_eight_and_never_loses_more_than_ten_percent() -> None:
    assert [make_divisible(v) for v in (32, 35.2, 4, 17, 100)] == [32, 32, 8, 16, 104]


def test_mbconv_has_its_parts_and_a_residual_only_when_shapes_match() -> None:
    block = MBConv(16, 16, expand_ratio=6, kernel=5, stride=1)
    assert block.use_residual and isinstance(block.se, SqueezeExcitation)
    assert block.depthwise[0].groups == 96 and block.depthwise[0].kernel_size == (5, 5)
    assert block.se.fc1.out_channels == 4  # SE width is a quarter of the block's input
    assert not MBConv(16, 24, expand_ratio=6, kernel=3, stride=1).use_residual
    assert not MBConv(16, 16, expand_ratio=6, kernel=3, stride=2).use_residual
    # With the projection's norm scaled to zero, a residual block is the identity.
    nn.init.zeros_(block.project[1].weight)
    nn.init.zeros_(block.project[1].bias)
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(block.eval()(x), x, rtol=0, atol=0)


def test_group_norm_and_small_images() -> None:
    model = efficientnet(base_width=0.25, depth_mult=0.3, head_channels=32, stem_stride=1, norm="group")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"EfficientNet.stem expected \(N, 1, \*, \*\) input, got \(2, 3, 8, 8\)"):
        efficientnet(base_width=0.25, depth_mult=0.3, head_channels=32)(torch.rand(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="multipliers must be positive"):
        efficientnet(depth_mult=0)
