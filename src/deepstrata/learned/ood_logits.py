"""OOD scores read from a classifier's logits: maximum softmax probability, maximum logit, energy, entropy.

Problem: a classifier says nothing about whether an input resembles its training data, yet it
is usually less sure of inputs that do not.
Idea: turn the logits z of one forward pass into a score, LARGER = MORE out-of-distribution:
- MSP, the negated maximum softmax probability -max_k softmax(z)_k (Hendrycks & Gimpel 2017,
  "A Baseline for Detecting Misclassified and Out-of-Distribution Examples");
- max logit, -max_k z_k, which keeps the scale that softmax normalises away (Hendrycks et al.
  2022, "Scaling Out-of-Distribution Detection for Real-World Settings");
- energy E(x) = -T logsumexp(z / T), low on the data the model was trained on and a
  log-likelihood up to a constant (Liu et al. 2020, "Energy-based Out-of-distribution Detection");
- predictive entropy H[softmax(z)], which on an ensemble run is the ensemble's entropy.
Nothing but the threshold is fitted: they are learned objects so that every score shares one
interface and the training-set threshold travels with them.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import OODScorer
from deepstrata.learned.ood_features import batched_logits
from deepstrata.registry import register_learned


class _LogitScorer(OODScorer):
    """A score that is a function of the logits (N, K) -> (N,)."""

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self._from_logits(batched_logits(model, x, batch_size=self.batch_size, where=f"{type(self).__name__}.score"))


@register_learned("ood_msp")
class MaxSoftmaxScorer(_LogitScorer):
    """Maximum softmax probability (Hendrycks & Gimpel 2017), negated: -max_k softmax(z)_k in [-1, -1/K].

    Larger = more out-of-distribution. Args: tpr, batch_size (see OODScorer).
    """

    score_name: ClassVar[str] = "msp"
    order: ClassVar[int] = 0

    def __init__(self, *, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.tpr = tpr
        self.batch_size = batch_size

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.softmax(dim=1).max(dim=1).values


@register_learned("ood_max_logit")
class MaxLogitScorer(_LogitScorer):
    """Maximum logit (Hendrycks et al. 2022), negated: -max_k z_k. Larger = more out-of-distribution."""

    score_name: ClassVar[str] = "max_logit"
    order: ClassVar[int] = 1

    def __init__(self, *, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.tpr = tpr
        self.batch_size = batch_size

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.max(dim=1).values


@register_learned("ood_energy")
class EnergyScorer(_LogitScorer):
    """Free energy (Liu et al. 2020): E(x) = -T logsumexp(z / T). Larger = more out-of-distribution.

    Args: temperature T > 0 (the paper uses T = 1 at test time), tpr, batch_size.
    """

    score_name: ClassVar[str] = "energy"
    order: ClassVar[int] = 2

    def __init__(self, *, temperature: float = 1.0, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.temperature = temperature
        self.tpr = tpr
        self.batch_size = batch_size

    def _check_params(self) -> None:
        if not self.temperature > 0:
            raise UserError(f"{type(self).__name__} needs temperature > 0, got temperature={self.temperature}")

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -self.temperature * torch.logsumexp(logits / self.temperature, dim=1)


@register_learned("ood_entropy")
class EntropyScorer(_LogitScorer):
    """Predictive entropy H[softmax(z)] = -sum_k p_k log p_k, in [0, log K]. Larger = more out-of-distribution.

    On a deep-ensemble run (`strata ensemble`), whose logits are the log of the members' mean
    probability, this is the ensemble's predictive entropy (Lakshminarayanan et al. 2017).
    Args: tpr, batch_size (see OODScorer).
    """

    score_name: ClassVar[str] = "entropy"
    order: ClassVar[int] = 7

    def __init__(self, *, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.tpr = tpr
        self.batch_size = batch_size

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(dim=1)
        return -(log_p.exp() * log_p).sum(dim=1)
