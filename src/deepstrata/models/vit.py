"""Vision Transformer: an image read as a sequence of patches.

Problem: convolutions hard-wire locality, so relations between distant parts of an image are
only seen after many layers; Transformers relate every pair of tokens in one layer but take a
sequence, not a grid.
Idea: cut the image into PxP patches, project each to a D-dimensional token, prepend a learned
class token, add learned position embeddings (attention itself ignores order), run a stack of
pre-norm Transformer encoder blocks, and classify from the class token's final state.
(Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; encoder from Vaswani et al. 2017.)

The encoder block lives here because no shared attention module existed when it was written:
attention runs through `F.scaled_dot_product_attention` and, when the maps are asked for,
through the explicit softmax(QK^T / sqrt(d)) V, which a test proves equal.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone, check_input
from deepstrata.nn.drop_path import DropPath
from deepstrata.registry import register_model


class PatchEmbedding(nn.Module):
    """(N, C, S, S) -> (N, (S/P)^2, D): a linear map of each flattened PxP patch.

    A convolution with kernel = stride = P is that linear map applied to non-overlapping
    patches (the test proves it equal to unfold + linear); patches are in row-major order.
    """

    def __init__(self, *, in_channels: int, image_size: int, patch_size: int, dim: int):
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"ViT patch_size {patch_size} must divide image_size {image_size}; choose a divisor of {image_size}")
        self.in_channels, self.image_size, self.patch_size = in_channels, image_size, patch_size
        self.grid = image_size // patch_size
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("ViT.patch_embed", x, (None, self.in_channels, self.image_size, self.image_size))
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, D, g, g) -> (N, g*g, D)


class Attention(nn.Module):
    """Multi-head self-attention; `forward(x, return_attention=True)` also returns the maps (N, H, T, T)."""

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"ViT dim {dim} must be divisible by heads {heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (N, H, T, hd)
        p = self.dropout if self.training else 0.0
        if return_attention:
            attn = torch.softmax(q @ k.transpose(-2, -1) * self.head_dim**-0.5, dim=-1)  # (N, H, T, T)
            out = F.dropout(attn, p, self.training) @ v
        else:
            attn, out = None, F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        out = out.transpose(1, 2).reshape(n, t, d)  # (N, T, D)
        return self.proj(out), attn


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (GELU, hidden = mlp_ratio * D)."""

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, attn = self.attn(self.norm1(x), return_attention=return_attention)
        x = x + self.drop_path(a)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, attn


class VisionTransformer(Backbone):
    """patch_embed -> [cls; patches] + pos_embed -> blocks -> LayerNorm -> class token (or mean) -> head."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        patch_size: int = 7,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        pool: Literal["cls", "mean"] = "cls",
    ):
        super().__init__()
        self.pool = pool
        self.patch_embed = PatchEmbedding(in_channels=in_channels, image_size=image_size, patch_size=patch_size, dim=dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
        self.pos_drop = nn.Dropout(dropout)
        rates = [drop_path * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, mlp_ratio=mlp_ratio, dropout=dropout, drop_path=r) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, 1 + g*g, D): class token and patch tokens with positions added."""
        x = self.patch_embed(x)  # (N, g*g, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (N, 1, D)
        return self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, D): the final class token (or the mean patch token)."""
        x = self.tokens(x)
        for block in self.blocks:
            x, _ = block(x)
        x = self.norm(x)
        return x[:, 0] if self.pool == "cls" else x[:, 1:].mean(dim=1)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights, one (N, heads, 1 + g*g, 1 + g*g) tensor per block; token 0 is the class token."""
        maps = []
        x = self.tokens(x)
        for block in self.blocks:
            x, attn = block(x, return_attention=True)
            maps.append(attn)
        return maps


def attention_rollout(maps: list[torch.Tensor], *, grid: int) -> torch.Tensor:
    """How much each patch flows into the class token through all layers: (N, grid, grid), rows sum to 1.

    Average heads, add the identity for the residual path, renormalise, and multiply the
    layers' matrices (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").
    """
    n, _, t, _ = maps[0].shape
    eye = torch.eye(t, dtype=maps[0].dtype, device=maps[0].device)
    rollout = eye.expand(n, t, t)
    for attn in maps:
        a = attn.mean(dim=1) + eye  # (N, T, T)
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    cls_to_patches = rollout[:, 0, 1:]  # (N, g*g)
    return (cls_to_patches / cls_to_patches.sum(dim=-1, keepdim=True)).view(n, grid, grid)


@register_model("vit", example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10, "image_size": 8, "patch_size": 2, "dim": 16, "depth": 2, "heads": 2}})
def vit(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    patch_size: int = 7,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    pool: Literal["cls", "mean"] = "cls",
) -> VisionTransformer:
    """Vision Transformer: PxP patches -> tokens + class token + learned positions -> pre-norm encoder."""
    return VisionTransformer(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, patch_size=patch_size, dim=dim,
        depth=depth, heads=heads, mlp_ratio=mlp_ratio, dropout=dropout, drop_path=drop_path, pool=pool,
    )  # fmt: skip


@register_model("vit_b16", example={"input_shape": [3, 32, 32], "kwargs": {"num_classes": 10, "image_size": 32, "dim": 24, "depth": 1, "heads": 2}})
def vit_b16(
    *, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224, dim: int = 768, depth: int = 12, heads: int = 12,
    dropout: float = 0.0, drop_path: float = 0.0,
) -> VisionTransformer:  # fmt: skip
    """ViT-Base/16 (86.6M parameters at 224x224, 1000 classes); the other arguments shrink it."""
    return VisionTransformer(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, patch_size=16, dim=dim, depth=depth,
        heads=heads, mlp_ratio=4.0, dropout=dropout, drop_path=drop_path,
    )  # fmt: skip
