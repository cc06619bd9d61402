"""Generative training: the model defines its objective, the task logs every part of it.

Problem: generative models are trained on their own objectives (negative ELBO, exact negative
log-likelihood, the denoising loss of diffusion, both players' GAN losses), and a single number
hides whether, say, a VAE's KL term collapsed or a discriminator overpowered its generator.
Idea: the task calls `model.objective(x, y)` (see `models.generative.GenerativeModel`), takes
its "loss" as the loss to minimise and logs every other term as `<split>/<term>` per epoch;
labels are passed only to class-conditional models. (Kingma & Welling 2014 for the ELBO terms.)
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.losses.model_objective import ModelObjective
from deepstrata.models.generative import class_labels
from deepstrata.registry import register_task
from deepstrata.tasks.base import SPLITS, StepOutput, Task


class GenerativeTask(Task):
    """Batches of (x, y); y is used only by class-conditional models."""

    kind = "generative"
    default_loss = "model_objective"
    default_metrics = ()
    curves_show_fit = False  # a GAN's two losses are a game, an ELBO has no baseline here: no fit verdict

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

    def model_inputs(self, batch: Any) -> tuple[Any, ...]:
        """What the model's `forward` takes for a batch: (x,), plus the labels for a class-conditional model.

        The labels go to the parameter named `y`, earlier optional ones keep their defaults (DDPM's
        `forward(x, t, y)` gets t=None: step 0). A model without a `forward` of its own is run
        through `objective(x, y)`, which takes the same two.
        """
        x, y = batch if isinstance(batch, (list, tuple)) else (batch, None)
        if y is None or not getattr(self.model, "conditional", False):
            return (x,)
        forward = type(self.model).forward
        if forward is nn.Module.forward:
            return (x, y)
        params = [p for p in inspect.signature(forward).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
        names = [p.name for p in params]
        if "y" not in names[1:] or any(p.default is p.empty for p in params[1 : names.index("y")]):
            return (x,)  # labels are optional for every conditional forward (the "no label" input)
        return (x, *(p.default for p in params[1 : names.index("y")]), y)

    reads = "none"
    predict_hint = "this run is a generative model: it samples rather than predicts; use `strata sample RUN_DIR --n 16`"

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        """The objective's terms for a batch (the loss and its parts, per the model)."""
        return {k: v for k, v in self.model.objective(x).items()}

    @torch.no_grad()
    def sample(
        self, n: int, *, label: int | None = None, steps: int | None = None, guidance: float | None = None, seed: int = 0
    ) -> torch.Tensor:
        """n new examples (n, *data_shape); `label` for class-conditional models (default: 0..K-1 in turn).

        `steps` and `guidance` apply only to models that list them in `sample_options`
        (diffusion: fewer steps than T use DDIM; classifier-free guidance weight w).
        """
        model = self.model.eval()
        name = type(model).__name__
        if n < 1:
            raise UserError(f"the number of samples must be at least 1, got {n}")
        num_classes = int(getattr(model, "num_classes", 0))
        options = getattr(model, "sample_options", frozenset())
        if label is not None and not num_classes:
            raise UserError(f"--class needs a class-conditional model; this {name} is unconditional (use cvae, cgan or conditional_ddpm)")
        if label is not None and not 0 <= label < num_classes:
            raise UserError(f"--class {label} is outside 0..{num_classes - 1}")
        if steps is not None and "steps" not in options:
            raise UserError(f"--steps applies to diffusion models only; a {name} draws a sample in one pass")
        if guidance is not None and not ("guidance" in options and num_classes):
            raise UserError("--guidance applies to class-conditional diffusion models (conditional_ddpm) only")
        y = torch.full((n,), label, dtype=torch.long) if label is not None else class_labels(n, num_classes)
        try:
            return model.sample(n, y=y, steps=steps, guidance=guidance, generator=torch.Generator().manual_seed(seed))
        except ValueError as err:
            raise UserError(str(err)) from None


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
