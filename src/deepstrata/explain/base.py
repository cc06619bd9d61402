"""The explainer contract: which parts of an input a model's prediction rests on.

Problem: saliency, Integrated Gradients, SHAP, LIME, Grad-CAM and attention rollout each come
with their own call shape (a Captum class around the model, a layer to hook, a baseline, a
number of samples), so every caller (the `explain` tool, the report, the faithfulness
benchmark) would learn each one's quirks, and a new method would touch all of them.
Idea: an explainer is a registered class built from typed keyword arguments (its settings:
steps, samples, baseline) whose `attribute(model, x, target)` returns one attribution tensor per
input, laid out so that it broadcasts against `x`: the same shape as `x` for pixel methods,
(N, 1, H, W) for a map over an image's positions (Grad-CAM, attention rollout), (N, T) for a
text model's tokens. Each registration says what it needs (`needs=`): "gradients" (any
differentiable model), "forward" (only model outputs: KernelSHAP, LIME, occlusion),
"feature_map" (a `Backbone` with an NCHW `forward_intermediates`), "attention" (a model with
`attention_maps`), "tokens" (a text model over token ids), "concepts" (TCAV, which needs
concept examples); `applies(model, x)` answers whether this explainer can explain that model,
and `why_not(model, x)` says, in words, why not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from deepstrata.registry import REGISTRIES

EXPLAINERS = REGISTRIES["explainer"]
Need = Literal["gradients", "forward", "feature_map", "attention", "tokens", "concepts"]


class Explainer:
    """Base class of registered attribution methods; subclasses set `needs` and implement `attribute`.

    `attribute(model, x, target)`: `model` maps a batch to logits (N, K) and is in eval mode; `x`
    is a batch of model inputs (as the run's loader yields them); `target` is (N,) class indices
    to explain (usually the predicted class). Returns a float tensor that broadcasts against
    `x` (see the module docstring), detached, on `x`'s device. Explainers never change `model`'s
    parameters or mode, and do not keep state between calls.
    """

    needs: ClassVar[Need] = "gradients"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        """None when this explainer applies to `model` on inputs like `x`, else the reason in words."""
        if self.needs in ("gradients", "feature_map", "concepts") and not torch.is_floating_point(x):
            return f"{type(self).__name__} differentiates the model's inputs, but these are {x.dtype} ids; use a token method (layer_integrated_gradients) for text models"
        return None

    def applies(self, model: nn.Module, x: torch.Tensor) -> bool:
        return self.why_not(model, x) is None

    def check_applies(self, model: nn.Module, x: torch.Tensor) -> None:
        """Raise a UserError with `why_not`'s reason when this explainer cannot explain `model` on `x`."""
        reason = self.why_not(model, x)
        if reason is not None:
            from deepstrata.errors import UserError

            name = getattr(type(self), "registered_name", type(self).__name__)
            raise UserError(f"{name}: {reason}")


def stage_reason(model: nn.Module, stage: int, *, method: str) -> str | None:
    """Why `method` cannot read `model`'s feature stage `stage` (not a Backbone, no stages, out of range), or None."""
    from deepstrata.models.base import Backbone

    if not isinstance(model, Backbone):
        return f"{type(model).__name__} is not a deepstrata Backbone, so its feature stages are not reachable; {method} needs feature_stages()"
    try:
        stages = model.feature_stages()
    except NotImplementedError as err:
        return str(err)
    if not -len(stages) <= stage < len(stages):
        return f"{type(model).__name__} has {len(stages)} feature stages; choose stage in {-len(stages)}..{len(stages) - 1}, got {stage}"
    return None


def explainer_name(name: str, *, who: str) -> str:
    """The registered explainer `name` stands for: itself, or the one that declares it in `aliases=` ("ig", "gradcam").

    An unknown name is a UserError with the closest names and aliases; `who` starts the message.
    """
    from deepstrata.errors import UserError, did_you_mean

    names = EXPLAINERS.names()
    if name in names:
        return name
    aliases = {alias: n for n in names for alias in EXPLAINERS.meta(n).get("aliases", ())}
    if name in aliases:
        return aliases[name]
    known = sorted(set(names) | set(aliases))
    raise UserError(f"{who}: unknown method '{name}'{did_you_mean(name, known)} (methods: {', '.join(names)}; `strata list explainers` describes them)")


def make_explainer(name: str, **kwargs: Any) -> Explainer:
    """The registered explainer `name`, built from typed, validated keyword arguments."""
    from deepstrata.registry import create

    explainer = create("explainer", name, **kwargs)
    if not isinstance(explainer, Explainer):  # pragma: no cover - a programming error in a registration
        raise TypeError(f"explainer '{name}' must build an Explainer, got {type(explainer).__name__}")
    return explainer


def check_batch(where: str, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`target` as (N,) long class indices on `x`'s device, or a UserError saying what is wrong."""
    from deepstrata.errors import UserError

    target = torch.as_tensor(target, device=x.device).long().reshape(-1)
    if x.dim() < 1 or target.shape[0] != x.shape[0]:
        raise UserError(f"{where}: target must hold one class index per input ({x.shape[0] if x.dim() else 0}), got {tuple(target.shape)}")
    return target


def constant_baseline(x: torch.Tensor, value: float) -> torch.Tensor:
    """The reference input every feature of which is `value` (0.0: the all-zeros input), shaped like `x`."""
    return torch.full_like(x, float(value))


@contextlib.contextmanager
def seeded(seed: int, x: torch.Tensor) -> Iterator[None]:
    """Run a sampling method's draws from torch's and numpy's global generators seeded with `seed`, then restore both.

    Captum's samplers draw from the global generators (NoiseTunnel, KernelShap and Lime from
    torch's, GradientShap also from numpy's), so a call is repeatable and leaves the caller's
    random state as it was.
    """
    import numpy as np

    state = np.random.get_state()
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def leaf_input(x: torch.Tensor) -> torch.Tensor:
    """A copy of `x` that requires gradients, for Captum's gradient methods (which warn when handed one that does not)."""
    return x.detach().clone().requires_grad_(True)


@contextlib.contextmanager
def quiet_hooks() -> Iterator[None]:
    """Silence Captum's notices that it sets (and afterwards removes) hooks on the model's activations."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Setting (forward, )?backward hooks")
        yield
