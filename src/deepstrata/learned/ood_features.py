"""What out-of-distribution scorers read from a classifier: logits, pre-logit vectors, stage features.

Problem: every OOD score starts from the same few quantities of a trained network (its logits,
its penultimate features, its intermediate feature maps), and each written inline would batch,
pool and move tensors its own way.
Idea: one place that runs a classifier over a tensor of inputs in batches, under
`torch.no_grad()` unless a gradient is asked for, through the Backbone interface
(`forward_head(forward_features(x), pre_logits=True)`, `forward_intermediates`), and pools each
stage's output to one vector per input (the channel means of a map, as Lee et al. 2018 do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.models.base import Backbone


def device_of(model: nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def in_batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive row slices of at most `batch_size` inputs."""
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size]


def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """fn applied to batches of x (moved to the model's device by `fn`), concatenated on the CPU."""
    return torch.cat([fn(batch).detach().cpu() for batch in in_batches(x, batch_size)])


def logits_of(model: nn.Module, x: torch.Tensor, *, where: str) -> torch.Tensor:
    """model(x) checked to be classifier logits (N, K) with K >= 2 (differentiable)."""
    out = model(x.to(device_of(model)))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < 2 or out.shape[0] != x.shape[0]:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise UserError(f"{where} needs a classifier whose forward returns logits of shape (N, K), got {got} for inputs {tuple(x.shape)}")
    return out


def require_backbone(model: nn.Module, where: str) -> Backbone:
    """The model as a Backbone (features, pre-logits, stages), or a UserError saying it is not one."""
    if not isinstance(model, Backbone):
        raise UserError(f"{where} reads features through the Backbone interface, but {type(model).__name__} is not a Backbone; use a logit score (msp, energy, ...)")
    return model


def pre_logits_of(model: nn.Module, x: torch.Tensor, *, where: str) -> torch.Tensor:
    """The pooled penultimate vector `forward_head(forward_features(x), pre_logits=True)`: (N, D)."""
    backbone = require_backbone(model, where)
    return backbone.forward_head(backbone.forward_features(x.to(device_of(model))), pre_logits=True).flatten(1)


def pool_stage(output: torch.Tensor) -> torch.Tensor:
    """One vector per input from a stage output: (N, C, H, W) -> channel means (N, C);
    (N, L, D) tokens or steps -> their mean (N, D); (N, D) as it is."""
    if output.ndim == 4:
        return output.mean(dim=(2, 3))
    if output.ndim == 3:
        return output.mean(dim=1)
    return output.flatten(1)


def stage_vectors(model: nn.Module, x: torch.Tensor, stages: Sequence[int], *, include_pooled: bool, where: str) -> list[torch.Tensor]:
    """Pooled outputs of the chosen `stages` (Backbone.forward_intermediates), then the pre-logits
    vector when `include_pooled`: a list of (N, D_i) tensors (differentiable)."""
    backbone = require_backbone(model, where)
    x = x.to(device_of(model))
    vectors = []
    if stages:
        try:
            caught = backbone.forward_intermediates(x, list(stages))
        except ValueError as err:  # a stage index out of range: the model says which it has
            raise UserError(f"{where}: {err}") from None
        vectors = [pool_stage(t) for t in caught]
    if include_pooled:
        vectors.append(pre_logits_of(backbone, x, where=where))
    return vectors


@torch.no_grad()
def batched_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int, where: str) -> torch.Tensor:
    """Logits (N, K) of all inputs, batched, without gradients."""
    return map_batches(lambda b: logits_of(model, b, where=where), x, batch_size)


@torch.no_grad()
def batched_pre_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int, where: str) -> torch.Tensor:
    """Pre-logit features (N, D) of all inputs, batched, without gradients."""
    return map_batches(lambda b: pre_logits_of(model, b, where=where), x, batch_size)


@torch.no_grad()
def batched_stage_vectors(model: nn.Module, x: torch.Tensor, stages: Sequence[int], *, include_pooled: bool, batch_size: int, where: str) -> list[torch.Tensor]:
    """`stage_vectors` of all inputs, batched, without gradients: one (N, D_i) tensor per stage."""
    parts = [[v.cpu() for v in stage_vectors(model, b, stages, include_pooled=include_pooled, where=where)] for b in in_batches(x, batch_size)]
    return [torch.cat(column) for column in zip(*parts, strict=True)]
