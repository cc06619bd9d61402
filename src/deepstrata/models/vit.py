"""Vision Transformer: an image read as a sequence of patches.

Problem: convolutions hard-wire locality, so relations between distant parts of an image are
only seen after many layers; Transformers relate every pair of tokens in one layer but take a
sequence, not a grid.
Idea: cut the image into PxP patches, project each to a D-dimensional token, prepend a learned
class token, add learned position embeddings (attention itself ignores order), run a stack of
pre-norm Transformer encoder blocks, and classify from the class token's final state.
(Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; encoder from Vaswani et al. 2017.)

Attention is the shared `nn.attention.MultiHeadAttention`: the fused kernel when training,
the explicit softmax(QK^T / sqrt(d)) V when the maps are asked for (tested equal).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.nn.attention import MultiHeadAttention
from deepstrata.nn.drop_path import DropPath
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.transformer import FeedForward
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


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)), then x + MLP(LN(x)), with stochastic depth on both branches.

    Built from the shared `nn.attention.MultiHeadAttention` and `nn.transformer.FeedForward`,
    with the parameter names of `nn.transformer.TransformerBlock` (a test loads one block's
    state dict into the other and gets the same output); this block adds DropPath and can
    return its attention weights, which the shared block does not.
    """

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"ViT dim {dim} must be divisible by heads {heads}; e.g. dim={heads * max(1, dim // heads)}")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), activation="gelu", dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, T, D) -> (N, T, D), and the attention weights (N, heads, T, T) when asked for."""
        a, attn = self.self_attn(self.norm1(x), need_weights=return_attention, average_attn_weights=False)
        x = x + self.drop_path(self.dropout(a))
        x = x + self.drop_path(self.dropout(self.mlp(self.norm2(x))))
        return x, attn


class VisionTransformer(Backbone):
    """patch_embed -> [cls; patches] + pos_embed -> blocks -> LayerNorm -> class token (or mean) -> head.

    `forward_features` gives every token after the final LayerNorm, the class token first; the
    stages of `forward_intermediates` are the encoder blocks (their tokens, before that norm).
    """

    feature_format = "NLC"

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
        init: Literal["torch", "vit"] = "torch",
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
        if init == "vit":
            # The ViT-B recipe: N(0, 0.02) weights, zero biases (0.02 ~ 1/sqrt(768)). On narrow models it
            # starts too small: torch's default 1/sqrt(fan_in) scale trains digits faster (docs/vision.md).
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
        """(N, C, S, S) -> (N, 1 + g*g, D): the class token and the patch tokens after the final norm."""
        x = self.tokens(x)
        for block in self.blocks:
            x, _ = block(x)
        return self.norm(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, 1 + g*g, D) -> the class token (or the mean patch token) (N, D) -> head."""
        x = features[:, 0] if self.pool == "cls" else features[:, 1:].mean(dim=1)
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return list(self.blocks)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights, one (N, heads, 1 + g*g, 1 + g*g) tensor per block; token 0 is the class token."""
        maps = []
        x = self.tokens(x)
        for block in self.blocks:
            x, attn = block(x, return_attention=True)
            maps.append(attn)
        return maps

    def pooled_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 + g*g) weights with which the head reads the tokens: the class token, or the mean of the patch tokens."""
        t = self.patch_embed.num_patches + 1
        weights = torch.zeros(x.shape[0], t, device=x.device)
        if self.pool == "cls":
            weights[:, 0] = 1.0
        else:
            weights[:, 1:] = 1.0 / (t - 1)
        return weights


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
    init: Literal["torch", "vit"] = "torch",
) -> VisionTransformer:
    """Vision Transformer: PxP patches -> tokens + class token + learned positions -> pre-norm encoder.

    `init="vit"` draws linear weights from N(0, 0.02) as for ViT-B; "torch" keeps torch's 1/sqrt(fan_in) scale.
    """
    return VisionTransformer(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, patch_size=patch_size, dim=dim,
        depth=depth, heads=heads, mlp_ratio=mlp_ratio, dropout=dropout, drop_path=drop_path, pool=pool, init=init,
    )  # fmt: skip


@register_model("vit_b16", example={"input_shape": [3, 32, 32], "kwargs": {"num_classes": 10, "image_size": 32, "dim": 24, "depth": 1, "heads": 2}})
def vit_b16(
    *, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224, dim: int = 768, depth: int = 12, heads: int = 12,
    dropout: float = 0.0, drop_path: float = 0.0,
) -> VisionTransformer:  # fmt: skip
    """ViT-Base/16 (86.6M parameters at 224x224, 1000 classes); the other arguments shrink it."""
    return VisionTransformer(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, patch_size=16, dim=dim, depth=depth,
        heads=heads, mlp_ratio=4.0, dropout=dropout, drop_path=drop_path, init="vit",
    )  # fmt: skip
