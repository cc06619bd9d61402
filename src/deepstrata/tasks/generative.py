"""Generative training: the model defines its objective, the task logs every part of it.

Problem: generative models are trained on their own objectives (negative ELBO, exact negative
log-likelihood, the denoising loss of diffusion, both players' GAN losses), and a single number
hides whether, say, a VAE's KL term collapsed or a discriminator overpowered its generator.
Idea: the task calls `model.objective(x, y)` (see `models.generative.GenerativeModel`), takes
its "loss" as the loss to minimise and logs every other term as `<split>/<term>` per epoch;
labels are passed only to class-conditional models. (Kingma & Welling 2014 for the ELBO terms.)
"""

from __future__ import annotations

from typing import Any

import torch

from deepstrata.errors import UserError
from deepstrata.losses.model_objective import ModelObjective
from deepstrata.registry import register_task
from deepstrata.tasks.base import SPLITS, StepOutput, Task


class GenerativeTask(Task):
    """Batches of (x, y); y is used only by class-conditional models."""

    kind = "generative"
    default_loss = "model_objective"
    default_metrics = ()

    def __init__(self, model: Any, loss: Any, metrics: dict[str, Any]):
        super().__init__(model, loss, metrics)
        self._term_sum: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
        self._last_terms: dict[str, torch.Tensor] = {}

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch if isinstance(batch, (list, tuple)) else (batch, None)
        terms = self.model.objective(x, y if getattr(self.model, "conditional", False) else None)
        self._last_terms = {k: v.detach() for k, v in terms.items() if k != "loss"}
        return StepOutput(loss=terms["loss"], batch_size=x.shape[0])

    def update_metrics(self, split: str, out: StepOutput) -> None:
        super().update_metrics(split, out)
        sums = self._term_sum[split]
        for name, value in self._last_terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) * out.batch_size

    def compute_metrics(self, split: str) -> dict[str, float]:
        count = self._loss_count[split]
        result = super().compute_metrics(split)
        if count:
            result.update({f"{split}/{k}": v / count for k, v in sorted(self._term_sum[split].items())})
        self._term_sum[split] = {}
        return result

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        return {k: v for k, v in self.model.objective(x).items()}


@register_task("generative")
def generative(*, model: Any, loss: Any, metrics: dict[str, Any]) -> GenerativeTask:
    """Train a generative model on its own objective; log each term (recon, kl, d_loss, ...)."""
    if not hasattr(model, "objective"):
        raise UserError(
            f"task 'generative' needs a generative model (one with objective() and sample()), got {type(model).__name__}; "
            "choose vae, cvae, gan, ddpm, realnvp, pixelcnn or autoencoder"
        )
    if not isinstance(loss, ModelObjective):
        raise UserError(
            f"task 'generative' trains on the model's own objective, but the recipe sets loss '{type(loss).__name__}'; "
            "remove `loss:` from the recipe (or set loss: {name: model_objective})"
        )
    return GenerativeTask(model, loss, metrics)
