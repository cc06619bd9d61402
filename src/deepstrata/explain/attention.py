"""Attention maps and attention rollout: which input tokens a Transformer's pooled state draws on.

Problem: one layer's attention weights say where each token looks in that layer, but after
several layers (and the residual paths around them) a token's state mixes everything, so a
single layer's map says little about what the classifier finally reads.
Idea: attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
treat each layer's head-averaged attention, plus the identity for the residual path and
renormalised so rows sum to 1, as a mixing matrix, and multiply the layers' matrices,
R = A_L ... A_2 A_1; row i of R says how much of each input token flows into token i's final
state. The explainer reads the rows the classifier pools (`model.pooled_tokens(x)`: the class
token, or the mean of the real tokens) and returns one weight per input token.

The model supplies `attention_maps(x)` (every layer's (N, heads, T, T) weights; padding keys
weigh 0) and `pooled_tokens(x)` (N, T): the ViT (models/vit.py), bert_classifier
(models/bert.py) and the Hugging Face encoders such as MiniLM (transfer/hf_encoder.py) do.
Outputs: for text (token ids (N, T)) one weight per token, (N, T), zero at padding; for images
(N, C, H, W) the patch tokens' weights (the class token, token 0, is dropped and the rest
renormalised to sum to 1) on the g x g patch grid, each pixel taking its patch's value
(nearest upsampling: a patch is one token), (N, 1, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import UserError
from deepstrata.explain.base import Explainer
from deepstrata.registry import register_explainer


def rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """A_L ... A_1 with A_l = rownorm(mean over heads of layer l's weights + I): (N, T, T)."""
    n, _, t, _ = maps[0].shape
    eye = torch.eye(t, dtype=maps[0].dtype, device=maps[0].device)
    flow = eye.expand(n, t, t)
    for weights in maps:
        a = weights.mean(dim=1) + eye  # (N, T, T): attention plus the residual path
        flow = (a / a.sum(dim=-1, keepdim=True)) @ flow
    return flow


def attention_reason(model: nn.Module, x: torch.Tensor) -> str | None:
    """Why attention methods cannot explain `model` on inputs like `x`, or None."""
    if not (callable(getattr(model, "attention_maps", None)) and callable(getattr(model, "pooled_tokens", None))):
        return (
            f"{type(model).__name__} exposes no attention_maps/pooled_tokens; attention methods explain Transformers "
            "(vit, bert_classifier, hf_encoder_classifier); use integrated_gradients or grad_cam instead"
        )
    if torch.is_floating_point(x):
        if x.dim() != 4:
            return f"attention maps of images need inputs (N, C, H, W), got {tuple(x.shape)}"
    elif x.dim() != 2:
        return f"attention maps of text need token ids (N, T), got {tuple(x.shape)}"
    return None


def token_weights_to_input(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, T) token weights laid out against the input: (N, T) for ids; for images (N, 1, H, W) over the patch grid."""
    if not torch.is_floating_point(x):
        return weights
    patches = weights[:, 1:]  # token 0 is the class token
    grid = math.isqrt(patches.shape[1])
    if grid * grid != patches.shape[1]:
        raise UserError(f"the model's {weights.shape[1]} tokens are not a class token and a square patch grid; cannot map them onto the image")
    patches = patches / patches.sum(dim=1, keepdim=True).clamp(min=torch.finfo(patches.dtype).tiny)
    grid_map = patches.reshape(-1, 1, grid, grid)
    return F.interpolate(grid_map, size=(x.shape[-2], x.shape[-1]), mode="nearest")


class _AttentionExplainer(Explainer):
    needs = "attention"

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or attention_reason(model, x)

    def flow(self, maps: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        with torch.no_grad():
            maps = model.attention_maps(x)
            read = model.pooled_tokens(x).to(maps[0].dtype)  # (N, T)
            weights = (read[:, None, :] @ self.flow(maps))[:, 0]  # (N, T)
        return token_weights_to_input(weights, x).detach()


@register_explainer("attention_rollout", aliases=("rollout",))
class AttentionRolloutExplainer(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020): the pooled tokens' row of A_L ... A_1; (N, T) for text, (N, 1, H, W) for a ViT.

    Not class-specific: `target` is ignored (attention does not depend on the class explained).
    """

    def flow(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return rollout(maps)


@register_explainer("attention")
class RawAttentionExplainer(_AttentionExplainer):
    """Raw attention of one layer (`layer`, default -1: the last), averaged over heads, read at the pooled tokens.

    Not class-specific: `target` is ignored.
    """

    def __init__(self, *, layer: int = -1) -> None:
        self.layer = layer

    def flow(self, maps: list[torch.Tensor]) -> torch.Tensor:
        if not -len(maps) <= self.layer < len(maps):
            raise UserError(f"attention: the model has {len(maps)} attention layers; choose layer in {-len(maps)}..{len(maps) - 1}, got {self.layer}")
        return maps[self.layer].mean(dim=1)
