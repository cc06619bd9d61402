"""FT-Transformer: a Transformer over a table row, one token per column.

Problem: an MLP mixes all of a row's columns in its first layer, so interactions between two
columns must be learned by every hidden unit at once; a Transformer relates every pair of
tokens explicitly, but a table row is not a sequence of tokens.
Idea (Gorishniy, Rubachev, Khrulkov & Babenko 2021, "Revisiting Deep Learning Models for
Tabular Data"): a Feature Tokenizer turns each column into a d-dimensional token, a numeric
value x_j as x_j * W_j + b_j and a category code as E_j[code] + b_j; a learned [CLS] token is
added, pre-norm Transformer blocks (attention, then a ReGLU feed-forward net) mix the tokens,
and the prediction is read from the [CLS] token after LayerNorm -> ReLU -> Linear. As in the
paper, the first block has no LayerNorm before its attention (the tokens arrive unnormalised
by design) and there is no positional encoding: the columns are a set, each identified by its
own W_j, E_j and b_j. The [CLS] token sits first here (the paper's code appends it last; the
attention is order-free, so only the index differs).

The paper's default: d_token 192, 3 blocks, 8 heads, attention dropout 0.2, FFN hidden 4/3 d,
FFN dropout 0.1, no residual dropout, AdamW lr 1e-4, weight decay 1e-5. This registration's
defaults are that configuration scaled down for CPU (d_token 64, 2 blocks); recipes say which.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.models.base import Backbone
from deepstrata.models.tabular_inputs import TableInputs
from deepstrata.nn.attention import MultiHeadAttention
from deepstrata.registry import register_model


class FeatureTokenizer(nn.Module):
    """(N, k + c) table -> (N, 1 + k + c, d) tokens: [CLS], one per numeric column, one per categorical column.

    numeric token j = x_j * weight_j + bias_j; categorical token j = E[offset_j + code_j] + bias_j,
    one embedding matrix holding every column's levels side by side (offsets). Initialised
    U(-1/sqrt(d), 1/sqrt(d)) as in the paper's code.
    """

    def __init__(self, numeric_features: int, categorical_cardinalities: list[int], d_token: int):
        super().__init__()
        self.inputs = TableInputs(numeric_features, categorical_cardinalities, model="FTTransformer")
        bound = 1 / math.sqrt(d_token)
        self.numeric_weight = nn.Parameter(torch.empty(numeric_features, d_token).uniform_(-bound, bound))
        self.numeric_bias = nn.Parameter(torch.empty(numeric_features, d_token).uniform_(-bound, bound))
        self.categories = nn.Embedding(max(1, sum(categorical_cardinalities)), d_token)
        nn.init.uniform_(self.categories.weight, -bound, bound)
        self.categorical_bias = nn.Parameter(torch.empty(len(categorical_cardinalities), d_token).uniform_(-bound, bound))
        offsets = torch.tensor([0, *categorical_cardinalities[:-1]], dtype=torch.long).cumsum(0) if categorical_cardinalities else torch.zeros(0, dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        self.cls = nn.Parameter(torch.empty(d_token).uniform_(-bound, bound))

    @property
    def num_tokens(self) -> int:
        return 1 + self.inputs.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numeric, codes = self.inputs(x)  # (N, k), (N, c)
        num_tokens = numeric.unsqueeze(-1) * self.numeric_weight + self.numeric_bias  # (N, k, d)
        cat_tokens = self.categories(codes + self.offsets) + self.categorical_bias  # (N, c, d)
        cls = self.cls.expand(x.shape[0], 1, -1)  # (N, 1, d)
        return torch.cat([cls, num_tokens, cat_tokens], dim=1)


class ReGLUFeedForward(nn.Module):
    """Linear(d, 2h) -> ReGLU (a * relu(b)) -> dropout -> Linear(h, d) (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, d_token: int, hidden: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_token, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, d_token)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.linear1(x).chunk(2, dim=-1)
        return self.linear2(self.dropout(a * F.relu(b)))


class Block(nn.Module):
    """Pre-norm block: x + drop(attn(LN(x))), then x + drop(ffn(LN(x))); the first block skips the attention LN."""

    def __init__(self, d_token: int, heads: int, *, ffn_hidden: int, attention_dropout: float, ffn_dropout: float, residual_dropout: float, first: bool):
        super().__init__()
        self.attn_norm = nn.Identity() if first else nn.LayerNorm(d_token)
        self.attn = MultiHeadAttention(d_token, heads, dropout=attention_dropout)
        self.ffn_norm = nn.LayerNorm(d_token)
        self.ffn = ReGLUFeedForward(d_token, ffn_hidden, ffn_dropout)
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, T, d) -> (N, T, d), and the attention weights (N, heads, T, T) when asked for."""
        a, attn = self.attn(self.attn_norm(x), need_weights=return_attention, average_attn_weights=False)
        x = x + self.residual_dropout(a)
        x = x + self.residual_dropout(self.ffn(self.ffn_norm(x)))
        return x, attn


class FTTransformer(Backbone):
    """tokenizer -> blocks -> [CLS] -> LayerNorm -> ReLU -> head.

    `forward_features` gives every token after the last block, [CLS] first ("NLC"); the
    stages of `forward_intermediates` are the blocks; `attention_maps(x)` returns each block's
    attention weights, token 0 being [CLS] and token 1 + j column j of `input_spec["columns"]`.
    """

    feature_format = "NLC"

    def __init__(
        self,
        *,
        numeric_features: int,
        categorical_cardinalities: list[int],
        num_classes: int,
        d_token: int = 64,
        n_blocks: int = 2,
        heads: int = 8,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.1,
        residual_dropout: float = 0.0,
    ):
        super().__init__()
        if d_token % heads:
            raise ConfigError(f"ft_transformer: d_token {d_token} must be divisible by heads {heads}; e.g. d_token={heads * max(1, d_token // heads)}")
        self.tokenizer = FeatureTokenizer(numeric_features, list(categorical_cardinalities), d_token)
        ffn_hidden = max(1, int(d_token * ffn_factor))
        self.blocks = nn.ModuleList(
            Block(d_token, heads, ffn_hidden=ffn_hidden, attention_dropout=attention_dropout, ffn_dropout=ffn_dropout, residual_dropout=residual_dropout, first=i == 0)
            for i in range(n_blocks)
        )
        self.head_norm = nn.LayerNorm(d_token)
        self.head = nn.Linear(d_token, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, k + c) -> (N, 1 + k + c, d): the tokens after the last block."""
        h = self.tokenizer(x)
        for block in self.blocks:
            h, _ = block(h)
        return h

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, T, d) -> the [CLS] token -> LayerNorm -> ReLU (N, d) -> head."""
        cls = F.relu(self.head_norm(features[:, 0]))
        return cls if pre_logits else self.head(cls)

    def feature_stages(self) -> list[nn.Module]:
        return list(self.blocks)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights, one (N, heads, T, T) tensor per block (T = 1 + columns)."""
        maps = []
        h = self.tokenizer(x)
        for block in self.blocks:
            h, attn = block(h, return_attention=True)
            maps.append(attn)
        return maps


@register_model(
    "ft_transformer",
    example={"input_shape": [5], "kwargs": {"numeric_features": 2, "categorical_cardinalities": [3, 4, 2], "num_classes": 2, "d_token": 8, "n_blocks": 2, "heads": 2}},
)
def ft_transformer(
    *,
    numeric_features: int,
    categorical_cardinalities: list[int],
    num_classes: int,
    d_token: int = 64,
    n_blocks: int = 2,
    heads: int = 8,
    ffn_factor: float = 4 / 3,
    attention_dropout: float = 0.2,
    ffn_dropout: float = 0.1,
    residual_dropout: float = 0.0,
) -> FTTransformer:
    """FT-Transformer (Gorishniy et al. 2021): a token per column, pre-norm Transformer blocks, head on [CLS]."""
    return FTTransformer(
        numeric_features=numeric_features,
        categorical_cardinalities=list(categorical_cardinalities),
        num_classes=num_classes,
        d_token=d_token,
        n_blocks=n_blocks,
        heads=heads,
        ffn_factor=ffn_factor,
        attention_dropout=attention_dropout,
        ffn_dropout=ffn_dropout,
        residual_dropout=residual_dropout,
    )
