"""Token attributions for text models: Integrated Gradients on the token embeddings.

Problem: a text model's inputs are integer token ids, which have no gradient, so pixel-style
methods cannot move them.
Idea: integrate the gradient along the straight path between the embeddings of a baseline
sequence and of the input, inside the model (layer Integrated Gradients on the embedding
layer: Captum LayerIntegratedGradients; Sundararajan et al. 2017), and sum each token's
attribution over the embedding dimensions: one number per token, (N, T), that adds up to the
score's change along that path. The baseline replaces every non-padding token by
`baseline_token` (default 0, this project's padding id) and keeps padding where it is; the
model's padding mask is read from the real ids throughout the path (Captum patches the
embedding layer's output), so padding positions stay masked and get exactly zero.

The embedding layer is the model's `get_input_embeddings()` (Hugging Face's name; bert_classifier
and hf_encoder_classifier have it), else its only `nn.Embedding` whose output the model uses.
"""

from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.explain.base import Explainer, check_batch
from deepstrata.registry import register_explainer


def token_embedding(model: nn.Module) -> nn.Module | None:
    """The module that maps token ids to vectors: `get_input_embeddings()`, or the model's single nn.Embedding."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        return getter()
    found = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    return found[0] if len(found) == 1 else None


def padding_id(model: nn.Module) -> int:
    """The model's padding token id (`pad_id` on the model or its encoder), 0 when it declares none."""
    for owner in (model, getattr(model, "encoder", None)):
        pad = getattr(owner, "pad_id", None)
        if isinstance(pad, int):
            return pad
    return 0


@register_explainer("layer_integrated_gradients", aliases=("layer_ig", "token_ig"))
class LayerIntegratedGradientsExplainer(Explainer):
    """Integrated Gradients on the token embeddings (Captum LayerIntegratedGradients), summed over the embedding: (N, T).

    Baseline: each non-padding token replaced by `baseline_token`; `n_steps` Gauss-Legendre
    points on the path. Only for models over token ids (N, T).
    """

    needs = "tokens"

    def __init__(self, *, n_steps: int = 50, baseline_token: int = 0, internal_batch_size: int | None = None) -> None:
        if n_steps < 1:
            raise ConfigError(f"layer_integrated_gradients.n_steps must be >= 1, got {n_steps}")
        self.n_steps, self.baseline_token, self.internal_batch_size = n_steps, baseline_token, internal_batch_size

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        if torch.is_floating_point(x) or x.dim() != 2:
            return f"layer_integrated_gradients explains text models over token ids (N, T), got {x.dtype} inputs of shape {tuple(x.shape)}; use integrated_gradients"
        if token_embedding(model) is None:
            return f"{type(model).__name__} has no get_input_embeddings() and not exactly one nn.Embedding, so its token embedding is unknown"
        return None

    def baseline(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        pad = padding_id(model)
        return torch.where(x == pad, x, torch.full_like(x, self.baseline_token))

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("layer_integrated_gradients", x, target)
        method = LayerIntegratedGradients(model, token_embedding(model))
        with torch.enable_grad():
            out = method.attribute(
                x, baselines=self.baseline(model, x), target=target, n_steps=self.n_steps,
                internal_batch_size=self.internal_batch_size,
            )  # fmt: skip
        return out.sum(dim=-1).detach()  # (N, T, D) -> (N, T)
