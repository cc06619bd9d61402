"""ODIN: temperature scaling and a small input perturbation sharpen the softmax OOD score.

Problem: the maximum softmax probability of in- and out-of-distribution inputs overlap, partly
because softmax saturates and partly because nothing pushes the two apart.
Idea: divide the logits by a large temperature T, and move each input a step epsilon against
the gradient of its own negative log-softmax, x' = x - epsilon * sign(-grad_x log S_yhat(x; T));
in-distribution inputs gain more confidence from the step than OOD ones, so the negated
max softmax(f(x') / T) separates them better (Liang et al. 2018, "Enhancing The Reliability of
Out-of-distribution Image Detection in Neural Networks").
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import OODScorer
from deepstrata.learned.ood_features import device_of, in_batches, logits_of
from deepstrata.registry import register_learned


@register_learned("ood_odin")
class ODINScorer(OODScorer):
    """ODIN (Liang et al. 2018): -max_k softmax(f(x') / T)_k on the perturbed input x'. Larger = more OOD.

    T and epsilon are NOT tuned on out-of-distribution data (the paper tunes them on each OOD
    set, which a detector cannot know in advance): the defaults are the paper's reported
    setting, T = 1000 and epsilon = 0.0014. epsilon is a step in the model's input space (the
    inputs after the run's scaling; for images scaled to [0, 1] with no normalisation, 0.0014 of
    the pixel range, as in the paper). epsilon = 0 gives temperature scaling alone.

    Args: temperature T > 0, epsilon >= 0, tpr, batch_size (see OODScorer).
    Fitted attributes: input_shape_, threshold_ (nothing else is learned).
    """

    score_name: ClassVar[str] = "odin"
    order: ClassVar[int] = 3

    def __init__(self, *, temperature: float = 1000.0, epsilon: float = 0.0014, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.temperature = temperature
        self.epsilon = epsilon
        self.tpr = tpr
        self.batch_size = batch_size

    def _check_params(self) -> None:
        if not self.temperature > 0 or not self.epsilon >= 0:
            raise UserError(f"{type(self).__name__} needs temperature > 0 and epsilon >= 0, got temperature={self.temperature}, epsilon={self.epsilon}")

    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        where = f"{type(self).__name__}.score"
        return torch.cat([self._batch_score(model, batch.to(device_of(model)), where).cpu() for batch in in_batches(x, self.batch_size)])

    def _batch_score(self, model: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
        t = self.temperature
        if self.epsilon > 0:
            with torch.enable_grad():
                x = x.detach().clone().requires_grad_(True)
                log_p = (logits_of(model, x, where=where) / t).log_softmax(dim=1)  # (N, K)
                nll = -log_p.max(dim=1).values.sum()  # -log S_yhat(x; T), summed: each input's gradient is its own
                (grad,) = torch.autograd.grad(nll, x)  # the weights' .grad are left untouched
            x = x.detach() - self.epsilon * grad.sign()  # step towards higher confidence
        with torch.no_grad():
            return -(logits_of(model, x, where=where) / t).softmax(dim=1).max(dim=1).values
