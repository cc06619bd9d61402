"""Reading a mixed table row as the tabular models need it: numeric values and category codes.

Problem: the tabular loaders (data/categorical_table.py) hand a model one float matrix, the
numeric columns first and then the categorical columns as codes stored as floats; every
tabular model has to cut it the same way, and a code outside a column's vocabulary (a raw
value typed by a user, a float that is not quite whole) must not crash an embedding lookup
deep inside the forward pass.
Idea: one module that splits x (N, numeric + categorical) into (N, numeric) floats and
(N, categorical) int64 codes: rounded to the nearest integer, and any code outside
0..cardinality-1 read as the column's LAST level, which the loaders reserve for "<unseen>".
It is tensor-only (no data-dependent Python branches), so models built on it export.
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.nn.input_checks import check_input


class TableInputs(nn.Module):
    """x (N, numeric_features + len(cardinalities)) -> (numeric (N, k) float, codes (N, c) int64)."""

    def __init__(self, numeric_features: int, categorical_cardinalities: list[int], *, model: str):
        super().__init__()
        if numeric_features < 0 or any(c < 1 for c in categorical_cardinalities):
            raise ConfigError(f"{model}: numeric_features must be >= 0 and every categorical cardinality >= 1, got {numeric_features} and {categorical_cardinalities}")
        if numeric_features + len(categorical_cardinalities) == 0:
            raise ConfigError(f"{model}: the table has no columns; give numeric_features or categorical_cardinalities (the tabular datasets fill both)")
        self.model = model
        self.numeric_features = numeric_features
        self.cardinalities = list(categorical_cardinalities)
        self.register_buffer("last", torch.tensor([c - 1 for c in categorical_cardinalities], dtype=torch.long), persistent=False)

    @property
    def width(self) -> int:
        return self.numeric_features + len(self.cardinalities)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(self.model, x, (None, self.width))
        numeric = x[:, : self.numeric_features]
        codes = x[:, self.numeric_features :].round().long()  # (N, c)
        codes = torch.where((codes >= 0) & (codes <= self.last), codes, self.last)  # out of range -> "<unseen>"
        return numeric, codes
