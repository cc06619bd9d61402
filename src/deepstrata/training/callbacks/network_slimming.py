"""Network slimming's sparsity training: an L1 penalty on the BatchNorm scales.

Problem: to remove a convolution's channel, its contribution must already be small; in a
network trained normally, few BatchNorm scales |gamma| are near zero, so removing channels by
|gamma| costs accuracy.
Idea: add strength * sum |gamma| over every BatchNorm scale to the training loss, which drives
the scales of unneeded channels towards zero while the task keeps the useful ones; then
`strata prune-channels RUN --criterion slimming` removes the channels with the smallest
|gamma| (`compression/channel_pruning.py`). (Liu, Li, Shen, Huang, Yan & Zhang 2017,
"Learning Efficient Convolutional Networks through Network Slimming", who used 1e-4 for VGG
and 1e-5 for ResNet and DenseNet on CIFAR.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


def bn_scales(model: nn.Module) -> list[nn.Parameter]:
    """The scale (gamma) of every affine BatchNorm layer of `model`."""
    return [m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


class NetworkSlimming(Callback):
    """Adds strength * sum |gamma| over the BatchNorm scales to each training loss."""

    def __init__(self, *, strength: float = 1e-4):
        if strength <= 0:
            raise UserError(f"network_slimming: strength must be > 0 (Liu et al. 2017 used 1e-5 to 1e-4), got {strength}")
        self.strength = strength
        self.scales: list[nn.Parameter] = []

    def setup(self, trainer: Any) -> None:
        model = trainer.task.model
        self.scales = [p for p in bn_scales(model) if p.requires_grad]
        if not self.scales:
            raise UserError(
                f"network_slimming: {type(model).__name__} has no trainable BatchNorm scales to penalise (a model with norm none, "
                "e.g. LeNet's default); train it with norm batch, or prune it by filter norms (prune-channels --criterion l1)"
            )

    def penalty(self) -> torch.Tensor:
        return self.strength * torch.stack([p.abs().sum() for p in self.scales]).sum()

    def on_before_backward(self, trainer: Any, output: Any) -> None:
        output.loss = output.loss + self.penalty()


@register_callback("network_slimming")
def network_slimming(*, strength: float = 1e-4) -> NetworkSlimming:
    """L1 penalty on the BatchNorm scales (network slimming, Liu et al. 2017) before channel pruning."""
    return NetworkSlimming(strength=strength)
