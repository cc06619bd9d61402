"""The threat model every attack shares: an eps-ball in raw pixel units inside the valid input box.

Problem: a classifier that is right on every test image can be wrong on images no person could
tell apart from them (Szegedy et al. 2014), and the literature states how far an attacker may
go in raw pixel units in [0, 1] ("eps = 0.3 on MNIST"), while the model sees inputs that the
run's preprocessing scaled, centred and divided by a standard deviation.
Idea: an attack is a function `attack(model, x, y, *, eps, lower, upper, unit, ...) -> x_adv` on
any classifier `model(x) -> logits`; `x` are model inputs, `lower`/`upper` the valid box of model
inputs, and `unit` the size in model-input units of one raw [0, 1] pixel unit, per feature
(for inputs normalised with `std`: `unit = 1 / std`), so a perturbation `delta` in raw units
moves the input by `unit * delta`. `input_box(input_spec, shape)` derives all three from a
run's input spec (the Predictor's `preprocess`: `((raw * scale - mean) / std - m) / s`).

Conventions of every attack here: the model's mode (eval/train) is the caller's choice and is
left as it was; gradients are taken with respect to the input only (`torch.autograd.grad`), so
no parameter's `.grad` changes; the result is detached and satisfies
`||(x_adv - x) / unit||_p <= eps` and `lower <= x_adv <= upper` up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from deepstrata.errors import UserError

Norm = Literal["linf", "l2"]
Model = Callable[[torch.Tensor], torch.Tensor]
# A per-example loss the attacker maximises: (logits (N, K), targets) -> (N,).
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Bound = float | torch.Tensor


def input_box(input_spec: Mapping[str, Any], shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower, upper, unit), each broadcastable to (N, *shape), from a run's `input_spec`.

    Raw inputs lie in [0, raw_max]; the model sees `((raw * scale - mean) / std - m) / s` (mean/std
    numbers or per-channel/per-feature lists, m/s a recipe's `normalize` transform). The map is
    increasing and affine per feature, so the box is its image of [0, raw_max], and one raw
    [0, 1] unit (raw_max grey levels) is `raw_max * scale / (std * s)` model-input units.
    """
    if input_spec.get("raw_max") is None:
        raise UserError("attacks need inputs with a bounded raw range, and this run's input_spec declares none (no raw_max); attack an image run")
    raw_max, scale = float(input_spec["raw_max"]), float(input_spec.get("scale", 1.0))
    mean, std = _per_feature(input_spec.get("mean", 0.0), shape), _per_feature(input_spec.get("std", 1.0), shape)
    lower, upper, unit = (0.0 - mean) / std, (raw_max * scale - mean) / std, raw_max * scale / std
    norm = input_spec.get("normalize")
    if norm:
        m, s = _per_feature(norm["mean"], shape), _per_feature(norm["std"], shape)
        lower, upper, unit = (lower - m) / s, (upper - m) / s, unit / s
    return lower, upper, unit


def _per_feature(value: Any, shape: Sequence[int]) -> torch.Tensor:
    """A number, or one value per channel (images: reshaped to (C, 1, 1)) or per feature."""
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.dim() == 1 and len(shape) > 1:
        return t.reshape(-1, *[1] * (len(shape) - 1))
    return t


def cross_entropy_per_example(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The untargeted attacker's default loss: cross-entropy of each example, (N,)."""
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit of the true class minus the largest other logit, (N,); <= 0 means misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.amax(dim=1)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The negated margin, (N,): max_{j != y} logit_j - logit_y, > 0 once misclassified.

    Carlini & Wagner 2017's loss (their f_6, without the confidence clip). Unlike cross-entropy it
    does not saturate on a confident or label-smoothed model, whose softmax gradients can vanish
    in float32 or point away from the nearest other class, so PGD on it is usually stronger.
    """
    return -margin(logits, y)


def fooled(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which examples the logits misclassify, (N,) bool; never, for soft targets (no label to miss)."""
    if y.dim() != 1 or y.dtype.is_floating_point:
        return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.argmax(dim=1) != y


def check_threat(name: str, x: torch.Tensor, eps: float, norm: str, norms: Sequence[str] = ("linf", "l2")) -> None:
    """UserError for a negative eps or a norm the attack does not support."""
    if not eps >= 0:
        raise UserError(f"{name}: eps must be >= 0 (raw pixel units in [0, 1]), got {eps!r}")
    if norm not in norms:
        raise UserError(f"{name}: unknown norm '{norm}'; choose one of {', '.join(norms)}")
    if x.dim() < 2:
        raise UserError(f"{name}: expected a batch of inputs (N, ...), got shape {tuple(x.shape)}")


def as_tensor(value: Bound, like: torch.Tensor) -> torch.Tensor:
    """A bound or unit as a tensor on `like`'s device and dtype (broadcastable to it)."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of a perturbation (N, ...) -> (N,)."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The nearest point of the eps-ball: clip each entry (L-infinity) or rescale (L2)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    length = lp_norm(delta, "l2").view(-1, *[1] * (delta.dim() - 1))
    return delta * torch.where(length > eps, eps / length.clamp_min(1e-12), torch.ones_like(length))


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of unit norm: sign(g) (L-infinity) or g / ||g||_2 (L2; 0 for g = 0)."""
    if norm == "linf":
        return grad.sign()
    length = lp_norm(grad, "l2").view(-1, *[1] * (grad.dim() - 1))
    return torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))


def random_in_ball(shape: torch.Size, eps: float, norm: str, *, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A uniform random point of the eps-ball per example (raw units), (N, ...)."""
    if norm == "linf":
        u = torch.rand(shape, generator=generator, dtype=like.dtype, device="cpu")
        return ((2 * u - 1) * eps).to(like.device)
    direction = torch.randn(shape, generator=generator, dtype=like.dtype, device="cpu")
    direction = direction / lp_norm(direction, "l2").clamp_min(1e-12).view(-1, *[1] * (len(shape) - 1))
    d = direction[0].numel()
    radius = eps * torch.rand(shape[0], generator=generator, dtype=like.dtype, device="cpu") ** (1.0 / d)
    return (direction * radius.view(-1, *[1] * (len(shape) - 1))).to(like.device)


def input_gradient(model: Model, x: torch.Tensor, y: torch.Tensor, loss: Loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d sum(loss) / dx, per-example loss (N,), logits): the gradient of the input only."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        losses = loss(logits, y)
        (grad,) = torch.autograd.grad(losses.sum(), x)
    return grad, losses.detach(), logits.detach()


def keep_better(
    best: torch.Tensor, best_loss: torch.Tensor, best_fooled: torch.Tensor, candidate: torch.Tensor, loss: torch.Tensor, is_fooled: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Across restarts, per example: the first successful adversarial, else the worst-loss one.

    A candidate replaces the kept example when the kept one does not fool the model and the
    candidate either does, or has a higher loss.
    """
    take = ~best_fooled & (is_fooled | (loss > best_loss))
    view = take.view(-1, *[1] * (best.dim() - 1))
    return torch.where(view, candidate, best), torch.where(take, loss, best_loss), best_fooled | is_fooled
