"""Mahalanobis OOD score on intermediate features: how far an input's features lie from every class.

Problem: the softmax sees only the last layer's verdict, while an unfamiliar input often looks
unfamiliar already in the early feature maps.
Idea: at each chosen stage of the network (and at the pooled pre-logit vector) fit class-
conditional Gaussians with one tied covariance to the training features (`class_gaussian`),
score an input by its squared Mahalanobis distance to the closest class mean at each stage, and
combine the stages; optionally move the input a small step epsilon that lowers its distance
first, which helps in-distribution inputs more than OOD ones (Lee et al. 2018, "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks").
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.class_gaussian import ClassConditionalGaussian
from deepstrata.learned.ood_base import OODScorer
from deepstrata.learned.ood_features import batched_stage_vectors, device_of, in_batches, require_backbone, stage_vectors
from deepstrata.models.base import Backbone
from deepstrata.registry import register_learned


@register_learned("ood_mahalanobis")
class MahalanobisScorer(OODScorer):
    """Lee et al. 2018 on the Backbone's stages: larger = more out-of-distribution.

    Each stage output is pooled to one vector per input (channel means of a map, token means;
    `ood_features.pool_stage`), as in the paper. Per layer l the score is
    d_l(x) = min_c (f_l(x) - mu_lc)^T Sigma_l^-1 (f_l(x) - mu_lc). The paper weights the layers by
    a logistic regression fitted on OOD (or adversarial) validation data; no OOD data is used
    here, so the layers are combined as the mean of their z-scores,
    (d_l(x) - mean_train(d_l)) / std_train(d_l): each layer counts alike whatever its scale.
    Input pre-processing (epsilon > 0): x' = x - epsilon * sign(grad_x score(x)), then score(x');
    off by default, since the paper tunes epsilon on OOD data.

    Args:
        stages: indices into `feature_stages()` (negative from the end); None: every stage; []: none.
        include_pooled: also score the pooled pre-logit vector `forward_head(..., pre_logits=True)`.
        epsilon: input pre-processing step in the model's input space (0 = off).
        ridge: relative ridge of each tied covariance (`ClassConditionalGaussian(eps=ridge)`).
        tpr, batch_size: see OODScorer.

    Fitted attributes: stages_ (the stage indices used), dims_ (feature width per layer, the
    pooled vector last), classes_, means_ (C, sum D) and precisions_ (sum D_l^2,) float64 (each
    layer's class means and ridged precision, flattened and concatenated), score_mean_ and
    score_std_ (L,) (training statistics of d_l), input_shape_, threshold_.
    """

    score_name: ClassVar[str] = "mahalanobis"
    order: ClassVar[int] = 4
    needs_labels: ClassVar[bool] = True

    def __init__(
        self,
        *,
        stages: list[int] | None = None,
        include_pooled: bool = True,
        epsilon: float = 0.0,
        ridge: float = 1e-6,
        tpr: float = 0.95,
        batch_size: int = 256,
    ) -> None:
        self.stages = stages
        self.include_pooled = include_pooled
        self.epsilon = epsilon
        self.ridge = ridge
        self.tpr = tpr
        self.batch_size = batch_size

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        return None if isinstance(model, Backbone) else f"{type(model).__name__} is not a Backbone: Mahalanobis needs its features (forward_features, forward_intermediates)"

    def _check_params(self) -> None:
        if self.epsilon < 0 or self.ridge < 0:
            raise UserError(f"{type(self).__name__} needs epsilon >= 0 and ridge >= 0, got epsilon={self.epsilon}, ridge={self.ridge}")

    def _resolved_stages(self, model: nn.Module, where: str) -> list[int]:
        backbone = require_backbone(model, where)
        if self.stages is not None and not self.stages:
            stages: list[int] = []
        else:
            try:
                count = len(backbone.feature_stages())
            except NotImplementedError:
                count = 0
            wanted = list(range(count)) if self.stages is None else list(self.stages)
            bad = [i for i in wanted if not -count <= i < count]
            if bad:
                raise UserError(f"{where}: stage {bad[0]} is out of range: {type(model).__name__} has {count} feature stages (choose from {-count}..{count - 1})")
            stages = sorted({i % count for i in wanted})
        if not stages and not self.include_pooled:
            raise UserError(f"{where}: no features to score; give stages or include_pooled=True")
        return stages

    def _fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        where = f"{type(self).__name__}.fit"
        labels = torch.zeros(len(x), dtype=torch.long) if y is None else y  # never None: needs_labels
        stages = self._resolved_stages(model, where)
        layers = batched_stage_vectors(model, x, stages, include_pooled=self.include_pooled, batch_size=self.batch_size, where=where)
        gaussians = [ClassConditionalGaussian(eps=self.ridge).fit(v.to(torch.float64), labels) for v in layers]
        self.stages_ = stages
        self.dims_ = [int(v.shape[1]) for v in layers]
        self.classes_ = gaussians[0].classes_
        self.means_ = torch.cat([g.means_ for g in gaussians], dim=1)  # (C, sum D)
        self.precisions_ = torch.cat([g.precision_.flatten() for g in gaussians])  # (sum D^2,)
        distances = torch.stack([g.mahalanobis(v.to(torch.float64)) for g, v in zip(gaussians, layers, strict=True)], dim=1)  # (N, L)
        self.score_mean_ = distances.mean(dim=0)
        self.score_std_ = distances.std(dim=0).clamp_min(1e-12)
        return None if self.epsilon > 0 else self._combine(distances)

    # ---------------------------------------------------------------- scoring
    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(means (C, D_l), precision (D_l, D_l)) per layer, unpacked from the stored tensors."""
        out, col, flat = [], 0, 0
        for d in self.dims_:
            out.append((self.means_[:, col : col + d], self.precisions_[flat : flat + d * d].view(d, d)))
            col, flat = col + d, flat + d * d
        return out

    def _combine(self, distances: torch.Tensor) -> torch.Tensor:
        """(N, L) per-layer distances -> (N,) mean z-score."""
        return ((distances - self.score_mean_) / self.score_std_).mean(dim=1)

    def _combined(self, model: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
        vectors = stage_vectors(model, x, self.stages_, include_pooled=self.include_pooled, where=where)
        distances = []
        for v, (means, precision) in zip(vectors, self._layers(), strict=True):
            v64 = v.to(torch.float64)
            means, precision = means.to(v64.device), precision.to(v64.device)
            vp = v64 @ precision  # (N, D)
            d = (vp * v64).sum(1, keepdim=True) - 2 * vp @ means.T + ((means @ precision) * means).sum(1)  # (N, C)
            distances.append(d.clamp_min(0).min(dim=1).values)
        return self._combine(torch.stack(distances, dim=1).cpu())  # (N,)

    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        where = f"{type(self).__name__}.score"
        if len(self.dims_) != len(self.stages_) + int(self.include_pooled):
            raise UserError(f"{where}: the fitted layers ({len(self.dims_)}) do not match stages={self.stages_} and include_pooled={self.include_pooled}")
        scores = []
        for batch in in_batches(x, self.batch_size):
            batch = batch.to(device_of(model))
            if self.epsilon > 0:
                with torch.enable_grad():
                    batch = batch.detach().clone().requires_grad_(True)
                    (grad,) = torch.autograd.grad(self._combined(model, batch, where).sum(), batch)
                batch = batch.detach() - self.epsilon * grad.sign()  # closer to the nearest class
            with torch.no_grad():
                scores.append(self._combined(model, batch, where))
        return torch.cat(scores)
