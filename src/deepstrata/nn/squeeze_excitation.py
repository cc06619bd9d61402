"""Squeeze-and-excitation: let a convolutional block reweight its own channels.

Problem: a convolution mixes channels only inside its small receptive field, so a block cannot
use global context to decide which of its feature maps matter for this image.
Idea: squeeze each channel to one number by global average pooling, pass the vector through a
small bottleneck MLP ending in a sigmoid, and multiply every channel by its gate in (0, 1).
(Hu et al. 2018, "Squeeze-and-Excitation Networks"; used inside MBConv by Tan & Le 2019.)
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.nn.input_checks import check_input


class SqueezeExcitation(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): x * sigmoid(W2 act(W1 mean_hw(x))).

    `squeeze_channels` is the bottleneck width; the 1x1 convolutions (with bias) hold W1, W2,
    named `fc1`/`fc2` like torchvision's and timm's SE layers.
    """

    def __init__(self, channels: int, squeeze_channels: int, *, activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        if squeeze_channels < 1:
            raise ValueError(f"SqueezeExcitation needs squeeze_channels >= 1, got {squeeze_channels}")
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = activation()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel gates, (N, C, 1, 1) in (0, 1)."""
        s = x.mean(dim=(2, 3), keepdim=True)  # squeeze: (N, C, 1, 1)
        return torch.sigmoid(self.fc2(self.act(self.fc1(s))))  # excitation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("SqueezeExcitation", x, (None, self.channels, None, None))
        return x * self.gate(x)
