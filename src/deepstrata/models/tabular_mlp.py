"""An MLP for mixed tables: one learned embedding per categorical column, beside the numbers.

Problem: a category's code (occupation 7) is a name, not a quantity; fed to an MLP as a number
it imposes an order and distances that mean nothing, and one-hot columns for a 40-level
country grow the first layer and share nothing between related levels.
Idea: give each categorical column its own learned embedding table, concatenate the looked-up
vectors with the (standardised) numeric columns, and run a plain MLP on the result (Guo &
Berkhahn 2016, "Entity Embeddings of Categorical Variables"; the default tabular model of
fastai). An embedding's width follows fastai's rule of thumb, capped small for tables this
size: d(cardinality) = min(16, round(1.6 * cardinality ** 0.56)), e.g. 2 levels -> 2, 9 -> 5,
43 -> 13. The learned embeddings are a by-product worth reusing: `categorical_embeddings(x)`
returns the embedded categorical block, which baselines/hybrid.py hands to gradient boosting.
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.models.base import Backbone
from deepstrata.models.tabular_inputs import TableInputs
from deepstrata.registry import register_model


def embedding_dim(cardinality: int, *, cap: int = 16) -> int:
    """fastai's rule of thumb min(cap, round(1.6 * n ** 0.56)) for a column of n levels (at least 1)."""
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class TabularMLP(Backbone):
    """[numeric, embed_1(code_1), ..., embed_c(code_c)] -> [Linear -> (BatchNorm) -> ReLU -> Dropout] x len(hidden) -> head.

    Input x: (N, numeric_features + len(categorical_cardinalities)) floats, numeric columns
    first (data/categorical_table.py). `forward_features` is the last hidden layer's
    (N, hidden[-1]) vector ("NC"); the stages of `forward_intermediates` are the hidden layers.
    """

    feature_format = "NC"

    def __init__(
        self,
        *,
        numeric_features: int,
        categorical_cardinalities: list[int],
        num_classes: int,
        hidden: tuple[int, ...] = (256, 256),
        dropout: float = 0.1,
        batch_norm: bool = False,
        embedding_dims: list[int] | None = None,
    ):
        super().__init__()
        self.inputs = TableInputs(numeric_features, categorical_cardinalities, model="TabularMLP")
        dims = embedding_dims if embedding_dims is not None else [embedding_dim(c) for c in categorical_cardinalities]
        if len(dims) != len(categorical_cardinalities):
            raise ValueError(f"TabularMLP: {len(dims)} embedding_dims for {len(categorical_cardinalities)} categorical columns")
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(categorical_cardinalities, dims))
        self.embedding_width = sum(dims)
        layers: list[nn.Module] = []
        width = numeric_features + self.embedding_width
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.stage_ends = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]

    def categorical_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """(N, numeric + c) table -> (N, sum of embedding dims): each column's code looked up, concatenated in column order."""
        _, codes = self.inputs(x)
        parts = [table(codes[:, j]) for j, table in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1) if parts else x.new_zeros(x.shape[0], 0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, numeric + c) -> (N, numeric + sum of embedding dims): the MLP's input."""
        numeric, _ = self.inputs(x)
        return torch.cat([numeric, self.categorical_embeddings(x)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, numeric + c) -> (N, hidden[-1])."""
        return self.body(self.embed(x))

    def feature_stages(self) -> list[nn.Module]:
        return [self.body[i] for i in self.stage_ends]


@register_model(
    "tabular_mlp",
    example={"input_shape": [5], "kwargs": {"numeric_features": 2, "categorical_cardinalities": [3, 4, 2], "num_classes": 2, "hidden": [8, 8]}},
)
def tabular_mlp(
    *,
    numeric_features: int,
    categorical_cardinalities: list[int],
    num_classes: int,
    hidden: list[int] = [256, 256],  # noqa: B006 - copied into a tuple, never mutated
    dropout: float = 0.1,
    batch_norm: bool = False,
    embedding_dims: list[int] | None = None,
) -> TabularMLP:
    """MLP for mixed tables: a learned embedding per categorical column, concatenated with the numeric columns."""
    return TabularMLP(
        numeric_features=numeric_features,
        categorical_cardinalities=list(categorical_cardinalities),
        num_classes=num_classes,
        hidden=tuple(hidden),
        dropout=dropout,
        batch_norm=batch_norm,
        embedding_dims=None if embedding_dims is None else list(embedding_dims),
    )
