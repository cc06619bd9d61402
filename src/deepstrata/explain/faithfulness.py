"""Faithfulness: does an attribution point at the pixels the model's score actually rests on?

Problem: an attribution map can look convincing (edges, the digit's strokes) and still say
nothing about the model; "which explanation is right" needs a measurement that involves the
model, not the eye.
Idea: the deletion and insertion curves of Petsiuk, Das & Saenko (2018, RISE). Rank the image's
positions by the attribution (summed over channels; the most positive evidence first), then
- deletion: replace the top-ranked positions with a baseline, a growing fraction at a time, and
  record the probability of the explained class; a faithful map makes it fall fast, so the area
  under the curve (AUC) is small;
- insertion: start from the baseline image and put back the top-ranked positions; a faithful map
  makes the probability rise fast, so the AUC is large.
The x axis is the fraction of positions changed (0..1), the AUC its trapezoid rule. Every channel
of a position is changed together. `random_attribution` gives the yardstick: a map of
independent uniform values, which ranks positions at random; a method is only informative to
the extent its curves beat it.
"""

from __future__ import annotations

import torch
from torch import nn


def reduce_to_positions(attribution: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An attribution that broadcasts against x (N, C, H, W) or (N, D) -> one score per position (N, P).

    Channel attributions are summed (a pixel's evidence is the sum of its channels'); a map of
    another spatial size than x (a coarse Grad-CAM) is resized to x's by bilinear interpolation.
    """
    a = attribution.detach().float()
    if x.dim() == 4:
        if a.dim() != 4:
            raise ValueError(f"an image attribution must be (N, C, H, W) or (N, 1, H, W), got shape {tuple(a.shape)}")
        if a.shape[-2:] != x.shape[-2:]:
            a = nn.functional.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
        a = a.sum(1)
    elif a.shape != x.shape:
        a = a.expand_as(x)
    return a.reshape(len(x), -1)


def random_attribution(x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Independent uniform scores, one per position of x ((N, 1, H, W) for images): a random ranking."""
    generator = torch.Generator().manual_seed(seed)
    shape = (len(x), 1, *x.shape[-2:]) if x.dim() == 4 else tuple(x.shape)
    return torch.rand(shape, generator=generator).to(x.device)


def _curve(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    attribution: torch.Tensor,
    *,
    baseline: torch.Tensor | float,
    steps: int,
    insert: bool,
    batch_size: int,
) -> torch.Tensor:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n = len(x)
    scores = reduce_to_positions(attribution, x)  # (N, P)
    positions = scores.shape[1]
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(positions, device=x.device).expand(n, -1))  # rank[i, p]: place of position p
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    spatial = x.shape[-2:] if x.dim() == 4 else x.shape[1:]
    counts = [round(k * positions / steps) for k in range(steps + 1)]
    probabilities = torch.empty(n, steps + 1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, max(1, batch_size // (steps + 1))):
                idx = slice(start, start + max(1, batch_size // (steps + 1)))
                xi, bi, ri, ti = x[idx], base[idx], rank[idx], target[idx]
                # (m, steps+1, *spatial): True where the position has been changed at that step
                changed = torch.stack([ri < c for c in counts], dim=1).reshape(len(xi), steps + 1, *spatial)
                if x.dim() == 4:
                    changed = changed.unsqueeze(2)  # every channel of a position together
                xs, bs = xi.unsqueeze(1), bi.unsqueeze(1)
                images = torch.where(changed, xs, bs) if insert else torch.where(changed, bs, xs)
                logits = model(images.reshape(-1, *x.shape[1:]))
                p = logits.float().softmax(1).reshape(len(xi), steps + 1, -1)
                probabilities[idx] = p.gather(2, ti.reshape(-1, 1, 1).expand(-1, steps + 1, 1)).squeeze(2).cpu()
    finally:
        model.train(was_training)
    return probabilities


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    attribution: torch.Tensor,
    *,
    baseline: torch.Tensor | float = 0.0,
    steps: int = 28,
    batch_size: int = 1024,
) -> torch.Tensor:
    """(N, steps + 1): the target's probability after the top k/steps of positions are set to `baseline`.

    Column 0 is the intact input, the last column the baseline image.
    """
    return _curve(model, x, target, attribution, baseline=baseline, steps=steps, insert=False, batch_size=batch_size)


def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    attribution: torch.Tensor,
    *,
    baseline: torch.Tensor | float = 0.0,
    steps: int = 28,
    batch_size: int = 1024,
) -> torch.Tensor:
    """(N, steps + 1): the target's probability when only the top k/steps of positions come from x, the rest from `baseline`.

    Column 0 is the baseline image, the last column the intact input.
    """
    return _curve(model, x, target, attribution, baseline=baseline, steps=steps, insert=True, batch_size=batch_size)


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under each row of a curve sampled at equal steps over [0, 1] (trapezoid rule): (N,)."""
    steps = curve.shape[-1] - 1
    if steps < 1:
        raise ValueError("a curve needs at least two points")
    return (curve[..., 1:] + curve[..., :-1]).sum(-1) / (2 * steps)
