"""Which group each input row belongs to, read from the row itself.

Problem: a mitigation that acts while training (reweighing, an adversary) or at prediction
time (a threshold per group) must know each example's group, but a batch carries only the
inputs and the labels: the dataset's per-row attributes (`DataBundle.attributes`) are cut in
split order and cannot be matched to shuffled batch rows.
Idea: when the group is itself an input feature (a tabular dataset's categorical column,
stored as an integer code), read it from the column: the data's `input_spec` names the
columns in x order (`columns`) and each categorical column's levels (`categories`, code i =
levels[i]). `GroupColumn` is that column's index and levels; `codes(x)` checks and returns the
codes. The limitation, stated where it bites: a group that is not an input (a dataset loaded
with `drop: [sex]`, "fairness through unawareness") cannot be used this way, and the error says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from deepstrata.errors import UserError


@dataclass(frozen=True)
class GroupColumn:
    """The input column holding group `name`: its index in x and its levels (code i = levels[i])."""

    name: str
    index: int
    levels: tuple[str, ...]

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Group codes (N,) long of a batch x (N, F); a UserError if the column holds no valid codes."""
        column = x[:, self.index]
        codes = column.round().long()
        if not torch.equal(codes.to(column.dtype), column) or codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= len(self.levels)):
            raise UserError(
                f"fairness: input column {self.index} ('{self.name}') should hold integer codes 0..{len(self.levels) - 1} "
                f"of {list(self.levels)}, but holds other values (was it standardised?)"
            )
        return codes


def group_column(input_spec: Mapping[str, Any], name: str, *, who: str) -> GroupColumn:
    """The column of group `name` among the model's inputs, from the data's input_spec.

    `who` names the caller in the error message (the task or tool).
    """
    columns = list(input_spec.get("columns") or [])
    categories = dict(input_spec.get("categories") or {})
    if not columns:
        raise UserError(f"{who}: the data describes no input columns (input_spec has no 'columns'), so the group '{name}' cannot be read from the inputs; it needs tabular data such as adult")
    if name not in columns:
        usable = ", ".join(c for c in columns if c in categories) or "none"
        raise UserError(
            f"{who}: the group '{name}' is not an input feature of this model (categorical inputs: {usable}); "
            f"the group must be one of the inputs (was it dropped with the dataset's drop: [...]?)"
        )
    if name not in categories:
        raise UserError(f"{who}: input column '{name}' is numeric; a group must be a categorical column (categorical inputs: {', '.join(categories) or 'none'})")
    return GroupColumn(name, columns.index(name), tuple(str(v) for v in categories[name]))
