"""Capsule network with dynamic routing: vectors whose length says "present" and whose direction says "how".

Problem: a CNN's max-pooling throws away where and in what pose a part was found, so it
must see many viewpoints of an object to learn them all, and it cannot check that the parts
it found agree on one whole.
Idea: replace scalar feature detectors by capsules, vectors squashed to length < 1 (the
probability that the entity exists; the direction encodes its pose). Each primary capsule
predicts every class capsule through a learned transform, and routing-by-agreement sends it
mostly to the class capsules whose output agrees with its prediction; a decoder that
reconstructs the image from the true class's capsule regularises the poses.
(Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules".)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.base import Backbone
from deepstrata.nn.input_checks import check_input
from deepstrata.registry import register_model


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s| (eq. 1): same direction, length in [0, 1)."""
    n2 = s.square().sum(dim=dim, keepdim=True)
    return s * (n2 / (1.0 + n2)) / torch.sqrt(n2 + eps)


def dynamic_routing(u_hat: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing by agreement (Procedure 1).

    u_hat: (N, P, K, D) predictions of the K parent capsules by the P child capsules (any
    strides: the class-capsule layer passes a transposed view, so nothing is copied).
    Returns the parent capsules v (N, K, D) and the coupling coefficients c (N, P, K), which
    sum to 1 over the parents of each child. The sums are elementwise products reduced over
    one axis: on CPU they beat the N*K tiny matrix products a matmul formulation needs.
    """
    b = u_hat.new_zeros(u_hat.shape[:3])  # (N, P, K) log priors
    for i in range(iterations):
        c = torch.softmax(b, dim=2)  # each child splits its output among the K parents
        v = squash((c.unsqueeze(-1) * u_hat).sum(1))  # s_j = sum_i c_ij u_hat_j|i -> (N, K, D)
        if i < iterations - 1:
            b = b + (u_hat * v.unsqueeze(1)).sum(-1)  # agreement u_hat_j|i . v_j -> (N, P, K)
    return v, c


class ClassCapsules(nn.Module):
    """Primary capsules (N, P * D_in) -> class capsules (N, K, D_out) by dynamic routing."""

    def __init__(self, num_primary: int, primary_dim: int, num_classes: int, class_dim: int, *, iterations: int = 3):
        super().__init__()
        if iterations < 1:
            raise ValueError(f"ClassCapsules: routing needs at least 1 iteration, got {iterations}")
        self.num_primary, self.primary_dim, self.num_classes, self.class_dim = num_primary, primary_dim, num_classes, class_dim
        self.iterations = iterations
        self.weight = nn.Parameter(0.05 * torch.randn(num_primary, num_classes, class_dim, primary_dim))  # W_ij

    @property
    def in_features(self) -> int:
        return self.num_primary * self.primary_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_input("CapsNet.head", features, (None, self.in_features))
        u = features.view(-1, self.num_primary, self.primary_dim)  # (N, P, D_in)
        # u_hat_j|i = W_ij u_i for every child i and parent j: one batched matmul over the P children,
        # (P, N, D_in) @ (P, D_in, K*D_out) -> (P, N, K*D_out), then viewed as (N, P, K, D_out) without a copy.
        u_hat = torch.bmm(u.transpose(0, 1), self.weight.flatten(1, 2).transpose(1, 2))
        u_hat = u_hat.view(self.num_primary, -1, self.num_classes, self.class_dim).transpose(0, 1)
        v, _ = dynamic_routing(u_hat, self.iterations)
        return v


class CapsNet(Backbone):
    """Conv -> primary capsules -> class capsules (routing) -> lengths; a decoder reconstructs the input.

    `forward` returns the class capsules' lengths (N, K), the scores the margin loss and the
    accuracy read. `forward_features` gives the squashed primary capsules, flattened (N, P * D):
    nothing is pooled, so that vector is also the pre-logits one. The head is the routing
    layer, so `reset_head` gives new class capsules (and a new decoder). The stages of
    `forward_intermediates` are the ReLU convolution's map and the primary capsule convolution's.
    """

    feature_format = "NC"

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        conv_channels: int,
        conv_kernel: int,
        primary_maps: int,
        primary_dim: int,
        primary_kernel: int,
        primary_stride: int,
        class_dim: int,
        routing_iterations: int,
        decoder_hidden: tuple[int, ...],
    ):
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.primary_dim, self.class_dim, self.decoder_hidden = primary_dim, class_dim, decoder_hidden
        self.conv = nn.Conv2d(in_channels, conv_channels, conv_kernel)
        self.relu = nn.ReLU()
        self.primary = nn.Conv2d(conv_channels, primary_maps * primary_dim, primary_kernel, stride=primary_stride)
        grid = (image_size - conv_kernel + 1 - primary_kernel) // primary_stride + 1
        if grid < 1:
            raise ValueError(
                f"CapsNet: a {image_size}x{image_size} image is too small for conv_kernel={conv_kernel} and "
                f"primary_kernel={primary_kernel}; use smaller kernels"
            )
        self.primary_maps, self.grid = primary_maps, grid
        self.head = ClassCapsules(primary_maps * grid * grid, primary_dim, num_classes, class_dim, iterations=routing_iterations)
        self.decoder = self._decoder(num_classes)

    def _decoder(self, num_classes: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = num_classes * self.class_dim
        for h in self.decoder_hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [nn.Linear(width, self.in_channels * self.image_size**2), nn.Sigmoid()]
        return nn.Sequential(*layers)

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, P * primary_dim) squashed primary capsules."""
        check_input("CapsNet.conv", x, (None, self.in_channels, self.image_size, self.image_size))
        h = self.relu(self.conv(x))
        p = self.primary(h)  # (N, maps * D, g, g)
        n = p.shape[0]
        p = p.view(n, self.primary_maps, self.primary_dim, self.grid, self.grid).permute(0, 1, 3, 4, 2)  # (N, maps, g, g, D)
        return squash(p.reshape(n, -1, self.primary_dim)).flatten(1)  # (N, P * D)

    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> class capsules (N, K, class_dim)."""
        return self.head(self.forward_features(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, P * D) primary capsules -> routing -> class capsules' lengths (N, K) in [0, 1)."""
        return features if pre_logits else self.head(features).norm(dim=-1)

    def feature_stages(self) -> list[nn.Module]:
        return [self.relu, self.primary]

    def reconstruct(self, capsules: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode the image from the capsule of `labels` (the others masked to zero): (N, C, H, W)."""
        mask = F.one_hot(labels, capsules.shape[1]).to(capsules.dtype).unsqueeze(-1)  # (N, K, 1)
        out = self.decoder((capsules * mask).flatten(1))
        return out.view(-1, self.in_channels, self.image_size, self.image_size)

    def reset_head(self, num_classes: int) -> None:
        """New class capsules for `num_classes` classes, and a decoder that reads them."""
        old = self.head
        self.head = ClassCapsules(old.num_primary, old.primary_dim, num_classes, old.class_dim, iterations=old.iterations)
        self.decoder = self._decoder(num_classes)


@register_model("capsnet", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "image_size": 8, "conv_channels": 16, "conv_kernel": 3, "primary_maps": 4, "primary_kernel": 3, "primary_stride": 1, "decoder_hidden": [32]}})
def capsnet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    conv_channels: int = 256,
    conv_kernel: int = 9,
    primary_maps: int = 32,
    primary_dim: int = 8,
    primary_kernel: int = 9,
    primary_stride: int = 2,
    class_dim: int = 16,
    routing_iterations: int = 3,
    decoder_hidden: list[int] = [512, 1024],  # noqa: B006 - copied into a tuple
) -> CapsNet:
    """Capsule network with dynamic routing (Sabour et al. 2017); defaults are the paper's MNIST network."""
    return CapsNet(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        conv_channels=conv_channels,
        conv_kernel=conv_kernel,
        primary_maps=primary_maps,
        primary_dim=primary_dim,
        primary_kernel=primary_kernel,
        primary_stride=primary_stride,
        class_dim=class_dim,
        routing_iterations=routing_iterations,
        decoder_hidden=tuple(decoder_hidden),
    )
