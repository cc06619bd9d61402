"""Deep nearest neighbours: an input is out of distribution when its features have no close training neighbours.

Problem: Gaussian scores (Mahalanobis) assume each class's features form one ellipsoid, which
real feature clusters rarely do.
Idea: keep the L2-normalised penultimate features of the training set and score an input by
the distance from its normalised features to its k-th nearest training neighbour; no density
is assumed and normalisation makes the distance a cosine one (Sun et al. 2022,
"Out-of-Distribution Detection with Deep Nearest Neighbors").
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import OODScorer
from deepstrata.learned.ood_features import batched_pre_logits, in_batches
from deepstrata.models.base import Backbone
from deepstrata.registry import register_learned


@register_learned("ood_knn")
class KNNScorer(OODScorer):
    """k-th nearest neighbour distance of normalised pre-logit features (Sun et al. 2022). Larger = more OOD.

    The bank holds every training input's features z / ||z||; the score of x is
    ||z(x)/||z(x)|| - b_(k)|| for its k-th closest bank row b_(k). On the training inputs
    themselves (for `threshold_`) each input's own row is left out (the (k+1)-th neighbour).

    Args: k (the paper's default for CIFAR-10: 50), tpr, batch_size (see OODScorer).
    Fitted attributes: bank_ (N_train, D) float32, input_shape_, threshold_.
    """

    score_name: ClassVar[str] = "knn"
    order: ClassVar[int] = 5

    def __init__(self, *, k: int = 50, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.k = k
        self.tpr = tpr
        self.batch_size = batch_size

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        return None if isinstance(model, Backbone) else f"{type(model).__name__} is not a Backbone: nearest neighbours need its pre-logit features"

    def _check_params(self) -> None:
        if self.k < 1:
            raise UserError(f"{type(self).__name__} needs k >= 1, got k={self.k}")

    def _fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        if x.shape[0] <= self.k:
            raise UserError(f"{type(self).__name__}.fit needs more than k={self.k} training inputs, got {x.shape[0]}; pass a smaller k")
        self.bank_ = self._normalised(model, x, f"{type(self).__name__}.fit")
        return self._kth_distance(self.bank_, self.k + 1)  # each row's nearest neighbour is itself

    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self._kth_distance(self._normalised(model, x, f"{type(self).__name__}.score"), self.k)

    def _normalised(self, model: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
        z = batched_pre_logits(model, x, batch_size=self.batch_size, where=where).to(torch.float32)
        return torch.nn.functional.normalize(z, dim=1)  # (N, D), unit rows

    def _kth_distance(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """Distance from each unit query row to its k-th closest bank row: (N,)."""
        k = min(k, self.bank_.shape[0])
        out = []
        for q in in_batches(queries, self.batch_size):
            similarity = q @ self.bank_.T  # (B, N_train): for unit vectors ||a - b||^2 = 2 - 2 a.b
            kth = similarity.topk(k, dim=1).values[:, -1]
            out.append((2.0 - 2.0 * kth).clamp_min(0).sqrt())
        return torch.cat(out)
