"""MC dropout: the spread of a network's predictions under dropout measures what it does not know.

Problem: one deterministic forward pass gives one softmax, which is confident even where the
training data never went.
Idea: keep dropout on at test time and average the softmax of T stochastic passes; dropout
training approximates a Bayesian posterior over weights, so the entropy of the averaged
prediction (the predictive entropy) is high where the sampled networks disagree or are all
unsure (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation").
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.ood_base import OODScorer
from deepstrata.learned.ood_features import device_of, in_batches, logits_of
from deepstrata.registry import register_learned

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The model's dropout layers that drop something (p > 0)."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and m.p > 0]


@register_learned("ood_mc_dropout")
class MCDropoutScorer(OODScorer):
    """Predictive entropy of T dropout passes (Gal & Ghahramani 2016): H[mean_t softmax(f_t(x))]. Larger = more OOD.

    Only the dropout modules are put in training mode (batch norm keeps its running statistics).
    The dropout masks come from a generator seeded with `seed` for each call (the global random
    state is saved and restored around it), so scoring the same inputs twice gives the same
    scores. A model with no dropout layer of p > 0 is refused: every pass would be the same.

    Args: passes T (>= 2), seed, tpr, batch_size (see OODScorer).
    Fitted attributes: dropout_layers_ (how many were switched on), input_shape_, threshold_.
    """

    score_name: ClassVar[str] = "mc_dropout"
    order: ClassVar[int] = 6
    example_dropout: ClassVar[float] = 0.3

    def __init__(self, *, passes: int = 20, seed: int = 0, tpr: float = 0.95, batch_size: int = 256) -> None:
        self.passes = passes
        self.seed = seed
        self.tpr = tpr
        self.batch_size = batch_size

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        if dropout_modules(model):
            return None
        return f"{type(model).__name__} has no dropout layer with p > 0, so MC dropout's passes would all agree; train it with dropout (e.g. --set model.dropout=0.2) or use another score"

    def _check_params(self) -> None:
        if self.passes < 2:
            raise UserError(f"{type(self).__name__} needs passes >= 2, got passes={self.passes}")

    def _fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        self.dropout_layers_ = len(dropout_modules(model))
        return None

    @torch.no_grad()
    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        where = f"{type(self).__name__}.score"
        reason = self.unsupported(model)
        if reason is not None:
            raise UserError(f"{where}: {reason}")
        layers = dropout_modules(model)
        device = device_of(model)
        out = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)  # inside fork_rng: the caller's random state is restored on exit
            for layer in layers:
                layer.train()
            try:
                for batch in in_batches(x, self.batch_size):
                    batch = batch.to(device)
                    probs = torch.stack([logits_of(model, batch, where=where).softmax(dim=1) for _ in range(self.passes)]).mean(dim=0)  # (B, K)
                    out.append(-(probs * probs.clamp_min(1e-12).log()).sum(dim=1).cpu())
            finally:
                for layer in layers:
                    layer.eval()
        return torch.cat(out)
