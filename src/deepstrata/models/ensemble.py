"""A deep ensemble: several independently trained networks that predict by averaging probabilities.

Problem: one network trained once is a single guess at the weights; its softmax is often
confidently wrong, and it has no way to say that other equally good weights disagree.
Idea: train M copies of one recipe from different random seeds and average their predicted
class probabilities, p(y | x) = (1/M) sum_m softmax(f_m(x)); the members disagree where the data
say little, so the average is better calibrated and more accurate than any one member
(Lakshminarayanan, Pritzel & Blundell 2017, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles").

The model outputs log p(y | x), the log of the mean softmax, as its "logits": softmax of the
output is the averaged probability and cross-entropy of the output is the ensemble's negative
log-likelihood, so evaluation, prediction and every tool work on an ensemble unchanged. It holds
its members as registered models, described in model.json by their own architecture names and
arguments (`members=[{"architecture": "mlp", "kwargs": {...}}, ...]`), so a saved ensemble is
rebuilt from the registry like any other model, with no pickle.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_model

_MEMBER = {"architecture": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "hidden": [8]}}


class EnsembleModel(nn.Module):
    """M member classifiers; `forward(x)` = log of the mean of their softmax outputs, (N, K).

    `member_log_probs(x)` gives each member's log-probabilities, (M, N, K), for measures of
    disagreement (mutual information). Members take the same inputs and predict the same K classes.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise UserError("an ensemble needs at least one member model; pass members=[{architecture, kwargs}, ...]")
        self.members = nn.ModuleList(members)

    def member_log_probs(self, *inputs: Any) -> torch.Tensor:
        """(M, N, K): log softmax of each member's output on the same inputs."""
        outs = [torch.log_softmax(member(*inputs), dim=-1) for member in self.members]
        # Compared as a list, not a set: under torch.export the batch size is a symbol, which cannot be hashed.
        shapes = [tuple(o.shape) for o in outs]
        if any(shape != shapes[0] for shape in shapes[1:]):
            raise UserError(f"ensemble members disagree on the output shape ({shapes}); members must predict the same classes")
        return torch.stack(outs)

    def forward(self, *inputs: Any) -> torch.Tensor:
        # log (1/M) sum_m p_m = logsumexp_m log p_m - log M, stable for tiny probabilities.
        log_probs = self.member_log_probs(*inputs)  # (M, N, K)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


@register_model("ensemble", example={"input_shape": [1, 8, 8], "kwargs": {"members": [_MEMBER, _MEMBER]}})
def ensemble(*, members: list[dict[str, Any]]) -> EnsembleModel:
    """Deep ensemble: registered member models whose softmax outputs are averaged (output: log mean probability)."""
    from deepstrata.registry import create

    built = []
    for i, member in enumerate(members):
        if not (isinstance(member, dict) and isinstance(member.get("architecture"), str) and isinstance(member.get("kwargs", {}), dict)):
            raise UserError(f"ensemble member {i} must be {{'architecture': <registered model>, 'kwargs': {{...}}}}, got {member!r:.120}")
        if set(member) - {"architecture", "kwargs"}:
            raise UserError(f"ensemble member {i}: unknown keys {sorted(set(member) - {'architecture', 'kwargs'})}; a member has only architecture and kwargs")
        built.append(create("model", member["architecture"], **member.get("kwargs", {})))
    return EnsembleModel(built)
