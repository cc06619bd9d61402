"""Gradient attributions: how much the class score moves when each input feature moves.

Problem: a network's decision is a non-linear function of thousands of pixels or features, and
"which of them mattered" has no single answer; the simplest answers all start from the gradient
of the class score with respect to the input, and differ in how they tame its noise and its
locality (a gradient says what matters for an infinitesimal change, not for the change from
"nothing" to this input).
Idea: five registered methods on Captum's implementations.
- `saliency`: |d score / d x| (Simonyan, Vedaldi & Zisserman 2014).
- `guided_backprop`: the gradient with only positive gradients passed back through each ReLU
  (Springenberg et al. 2015).
- `input_x_gradient`: x * d score / d x (Shrikumar et al. 2016), the first-order Taylor term.
- `integrated_gradients`: (x - x') * the average gradient along the straight path from a
  baseline x' to x (Sundararajan, Taly & Yan 2017); its attributions sum to F(x) - F(x')
  (completeness), up to the error of the path integral's quadrature (`n_steps`).
- `smoothgrad`: the average of a method's attributions over copies of x with Gaussian noise
  added (Smilkov et al. 2017), through Captum's NoiseTunnel.
Every method returns one attribution per input feature, shaped like x.
"""

from __future__ import annotations

from typing import Literal

import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.explain.base import Explainer, check_batch, constant_baseline, leaf_input, quiet_hooks, seeded
from deepstrata.registry import register_explainer


@register_explainer("saliency")
class SaliencyExplainer(Explainer):
    """Saliency (Simonyan et al. 2014): |d score_target / d x| per input feature (Captum Saliency).

    `absolute=False` keeps the gradient's sign.
    """

    needs = "gradients"

    def __init__(self, *, absolute: bool = True) -> None:
        self.absolute = absolute

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("saliency", x, target)
        with torch.enable_grad():
            return Saliency(model).attribute(leaf_input(x), target=target, abs=self.absolute).detach()


@register_explainer("guided_backprop")
class GuidedBackpropExplainer(Explainer):
    """Guided backpropagation (Springenberg et al. 2015): the input gradient with only positive gradients passed back through each `nn.ReLU` (Captum GuidedBackprop).

    It changes the backward pass of `nn.ReLU` modules only, so a model without them (or with
    its ReLUs applied as functions) gets plain gradients; such models are refused. Adebayo et
    al. 2018 found its maps barely change when the model's weights are randomised: it shows
    the input's edges more than the model's reasons.
    """

    needs = "gradients"

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        reason = super().why_not(model, x)
        if reason is None and not any(isinstance(m, nn.ReLU) for m in model.modules()):
            reason = f"{type(model).__name__} has no nn.ReLU modules, whose backward pass guided backpropagation changes; it would equal plain gradients (use saliency)"
        return reason

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("guided_backprop", x, target)
        with torch.enable_grad(), quiet_hooks():
            return GuidedBackprop(model).attribute(leaf_input(x), target=target).detach()


@register_explainer("input_x_gradient")
class InputXGradientExplainer(Explainer):
    """Input x gradient (Shrikumar et al. 2016): x * d score_target / d x (Captum InputXGradient)."""

    needs = "gradients"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("input_x_gradient", x, target)
        with torch.enable_grad():
            return InputXGradient(model).attribute(leaf_input(x), target=target).detach()


@register_explainer("integrated_gradients", aliases=("ig",))
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017): (x - x') * mean gradient on the path x' -> x.

    The baseline x' is the constant input `baseline` (0.0: all zeros, in the model's input
    units: for inputs normalised by mean and std, zero is the dataset's mean value). `n_steps`
    points of Captum's Gauss-Legendre rule approximate the path integral; the attributions then
    sum to F(x) - F(x') up to that rule's error (tests/explain/test_gradients.py measures it).
    `internal_batch_size` bounds how many path points go through the model at once.
    """

    needs = "gradients"

    def __init__(self, *, n_steps: int = 50, baseline: float = 0.0, internal_batch_size: int | None = None) -> None:
        if n_steps < 1:
            raise ConfigError(f"integrated_gradients.n_steps must be >= 1, got {n_steps}")
        self.n_steps, self.baseline, self.internal_batch_size = n_steps, baseline, internal_batch_size

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("integrated_gradients", x, target)
        with torch.enable_grad():
            return (
                IntegratedGradients(model)
                .attribute(
                    leaf_input(x), baselines=constant_baseline(x, self.baseline), target=target, n_steps=self.n_steps,
                    internal_batch_size=self.internal_batch_size,
                )
                .detach()
            )  # fmt: skip


@register_explainer("smoothgrad")
class SmoothGradExplainer(Explainer):
    """SmoothGrad (Smilkov et al. 2017): a method's attributions averaged over noisy copies of x (Captum NoiseTunnel).

    `around` is the method smoothed: "saliency" (|gradient|, the paper's SmoothGrad) or
    "integrated_gradients" (zero baseline, `n_steps` steps). The noise is N(0, sigma^2) with
    sigma = `noise` x (max - min of the batch's values): the paper's 10-20% of the input range
    (0.15 here); `samples` noisy copies per input. The noise is drawn from a generator seeded
    with `seed` on every call (the caller's random state is restored), so a call is repeatable;
    the draws come in batch order, so an input's noise (and sigma, through the range) depends on
    the batch it is explained in.
    """

    needs = "gradients"

    def __init__(
        self, *, around: Literal["saliency", "integrated_gradients"] = "saliency", samples: int = 25, noise: float = 0.15,
        seed: int = 0, n_steps: int = 20,
    ) -> None:  # fmt: skip
        if samples < 1 or noise < 0:
            raise ConfigError(f"smoothgrad needs samples >= 1 and noise >= 0, got samples={samples}, noise={noise}")
        self.around, self.samples, self.noise, self.seed, self.n_steps = around, samples, noise, seed, n_steps

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("smoothgrad", x, target)
        sigma = float(self.noise * (x.max() - x.min()))
        if self.around == "saliency":
            inner, extra = Saliency(model), {"abs": True}
        else:
            inner, extra = IntegratedGradients(model), {"baselines": torch.zeros_like(x), "n_steps": self.n_steps}
        with seeded(self.seed, x), torch.enable_grad():
            out = NoiseTunnel(inner).attribute(leaf_input(x), nt_type="smoothgrad", nt_samples=self.samples, stdevs=sigma, target=target, **extra)
        return out.detach()
