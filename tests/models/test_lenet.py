"""LeNet-5: the paper's layer sizes, pooling and activation choices, shape errors, and MNIST."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.lenet import lenet5
from tests.conftest import REPO, requires_shared_data


def test_layer_sizes_of_the_paper() -> None:
    model = lenet5()
    # C1 6@28x28 (5x5, padded), S2 -> 14x14, C3 16@10x10, S4 -> 5x5 = 400 units, F5 120, F6 84, output 10.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 6, (5, 5)), (6, 16, (5, 5))]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(400, 120), (120, 84), (84, 10)]
    # 156 + 2,416 + 48,120 + 10,164 + 850 (C3 fully connected, unlike the paper's sparse table).
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model.num_features == 84


def test_classic_variant_uses_tanh_and_average_pooling() -> None:
    model = lenet5(activation="tanh", pool="avg")
    kinds = {type(m) for m in model.modules()}
    assert nn.Tanh in kinds and nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds and nn.ReLU not in kinds
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm2d), ("group", nn.GroupNorm)])
def test_normalisation_is_selectable(norm: str, kind: type) -> None:
    model = lenet5(norm=norm)
    assert sum(isinstance(m, kind) for m in model.modules()) == 2
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_shape_error_names_the_layer_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"LeNet5.features expected \(N, 1, 28, 28\) input, got \(2, 1, 32, 32\)"):
        lenet5()(torch.rand(2, 1, 32, 32))


def test_too_small_images_are_refused_with_the_minimum() -> None:
    with pytest.raises(ConfigError, match="image_size >= 12"):
        lenet5(image_size=8)


@pytest.mark.e2e
@requires_shared_data("mnist")
def test_mnist_recipe_short(tmp_path) -> None:
    from deepstrata.api import train

    result = train(
        REPO / "recipes" / "mnist_lenet.yaml",
        ["data.limit=4000", "trainer.max_epochs=2", "trainer.progress=off", f"output_dir={tmp_path}", "scheduler.warmup_steps=20"],
    )
    # 3,600 training images, 2 epochs, scored on the official 10,000-image test set.
    assert result.metrics["test/accuracy"] >= 0.93
