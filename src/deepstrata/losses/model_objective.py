"""The model's own objective: for generative models the loss is part of the model.

Problem: a VAE's negative ELBO, a flow's exact negative log-likelihood or a diffusion model's
denoising loss cannot be written as `loss(prediction, target)`; they need the model's insides.
Idea: a placeholder loss that says "use `model.objective(x, y)`"; the generative task accepts
only this loss, so a recipe that sets another one fails at once instead of being ignored.
"""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.registry import register_loss


class ModelObjective(nn.Module):
    """Marker: the task calls `model.objective`; calling this loss directly is an error."""

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("model_objective is computed by the model's objective(x, y); the generative task calls it")


@register_loss("model_objective")
def model_objective() -> ModelObjective:
    """The generative model's own objective (negative ELBO, NLL, denoising or GAN losses)."""
    return ModelObjective()
