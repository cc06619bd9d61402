"""A binary classifier whose decision threshold depends on a group read from its own input.

Problem: per-group thresholds fitted after training (fairness post-processing, Hardt et al.
2016) are useless if every consumer of the run (evaluate, predict, a server, the audit) has
to know them and the group of each row.
Idea: wrap the classifier in one registered model, `group_thresholded`, that reads the group
code from one input column (a tabular dataset's categorical column, an integer code) and
subtracts that group's threshold tau_g from the positive class's logit: z'_1 = z_1 - tau_g,
z'_0 = z_0. The argmax of z' is 1 exactly when z_1 - z_0 > tau_g, so everything that takes the
argmax applies the group's threshold with no further step. The thresholds are a buffer in
model.safetensors; model.json names the base architecture, the column and the group count.
(The shifted logits are decision scores, not calibrated probabilities.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepstrata.registry import create, register_model


class GroupThresholded(nn.Module):
    """`base` (a binary classifier on (N, F) rows) with a threshold per value of input column `column`."""

    def __init__(self, base: nn.Module, *, column: int, num_groups: int):
        super().__init__()
        self.base = base
        self.column = int(column)
        self.register_buffer("thresholds", torch.zeros(num_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        codes = x[:, self.column].round().long().clamp(0, self.thresholds.numel() - 1)
        shift = torch.zeros_like(logits)
        shift[:, 1] = self.thresholds.to(logits.dtype)[codes]
        return logits - shift


@register_model(
    "group_thresholded",
    example={"input_shape": [4], "kwargs": {"base": {"architecture": "mlp", "kwargs": {"in_features": 4, "num_classes": 2}}, "column": 3, "num_groups": 2}},
)
def group_thresholded(*, base: dict[str, Any], column: int, num_groups: int) -> GroupThresholded:
    """A binary classifier with one decision threshold per group of an input column (`strata fair-threshold` writes these).

    base: {"architecture": registered model name, "kwargs": its arguments} (the parent's model.json).
    column: the input column holding the group code; num_groups: how many codes it takes.
    """
    model = create("model", str(base["architecture"]), **dict(base.get("kwargs", {})))
    return GroupThresholded(model, column=column, num_groups=num_groups)
