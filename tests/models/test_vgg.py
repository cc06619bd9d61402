"""VGG: the paper's configurations (parameter counts equal torchvision's), pooling choices, small images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.vgg import vgg, vgg11, vgg16


def conv_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.stages.parameters())


@pytest.mark.parametrize("factory, expected", [(vgg11, 9_220_480), (vgg16, 14_714_688)])
def test_convolution_stack_matches_torchvision(factory, expected: int) -> None:
    # torchvision.models.vgg11/vgg16(...).features parameter counts (3 input channels, no BatchNorm).
    with torch.device("meta"):
        model = factory(in_channels=3, num_classes=1000, norm="none")
    assert conv_params(model) == expected


def test_vgg16_has_thirteen_3x3_convolutions_in_five_stages() -> None:
    model = vgg16(width=8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs)
    assert [len([m for m in s if isinstance(m, nn.Conv2d)]) for s in model.stages] == [2, 2, 3, 3, 3]


def test_pooling_stops_at_one_pixel_so_deep_configs_fit_small_images() -> None:
    model = vgg16(width=8).eval()
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)  # 8 -> 4 -> 2 -> 1 -> 1


@pytest.mark.parametrize("pool, kind", [("max", nn.MaxPool2d), ("avg", nn.AvgPool2d)])
def test_pooling_is_selectable(pool: str, kind: type) -> None:
    model = vgg(stages=[[4], [8]], pool=pool)
    assert isinstance(model.downsample, kind)
    x = torch.rand(1, 1, 4, 4)
    with torch.no_grad():
        after = model.downsample(model.stages[0](x))
    assert after.shape == (1, 4, 2, 2)


def test_norm_choices_and_hidden_classifier() -> None:
    model = vgg(stages=[[4], [8]], norm="layer", hidden=16, dropout=0.5)
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in model.modules())
    feats = model.forward_features(torch.rand(2, 1, 8, 8))
    assert feats.shape == (2, 8, 4, 4) and model.num_features == 16 and model.forward_head(feats, pre_logits=True).shape == (2, 16)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"VGG.stages expected \(N, 1, \*, \*\) input, got \(2, 3, 8, 8\)"):
        vgg()(torch.rand(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="at least one stage"):
        vgg(stages=[])
