"""Grad-CAM: where in the image the evidence for a class sits, from a convolutional feature map.

Problem: pixel gradients are noisy and not class-discriminative at the scale of objects, while
the last convolutional feature map holds the network's spatial evidence at a coarse resolution,
with no say on which channels matter for which class.
Idea: weigh each channel k of a feature map A (N, K, h, w) by the spatial mean of the class
score's gradient, w_k = mean_ij d y_c / d A_kij, and keep the positive part of the weighted sum,
ReLU(sum_k w_k A_k); upsample it bilinearly to the input (Selvaraju et al. 2017, "Grad-CAM").
The map is read from any `Backbone` through its stages (the modules whose outputs
`forward_intermediates` returns; default: the last one, the last feature map), so a model needs
no Grad-CAM-specific code. Guided Grad-CAM multiplies the upsampled map by guided
backpropagation's pixel gradients (Springenberg et al. 2015; Captum GuidedBackprop) for a
fine-grained, class-discriminative map shaped like the input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop
from torch import nn

from deepstrata.errors import UserError
from deepstrata.explain.base import Explainer, check_batch, leaf_input, quiet_hooks, stage_reason
from deepstrata.models.base import Backbone
from deepstrata.registry import register_explainer


def feature_map_reason(model: nn.Module, x: torch.Tensor, stage: int) -> str | None:
    """Why `model` has no NCHW feature map at `stage` for inputs like `x`, or None when it has one."""
    reason = stage_reason(model, stage, method="Grad-CAM")
    if reason is not None:
        return reason
    if model.feature_format != "NCHW":  # type: ignore[union-attr]
        return (
            f"{type(model).__name__}'s features are {model.feature_format}, not an NCHW feature map; Grad-CAM needs a "  # type: ignore[union-attr]
            "convolutional map (for a Vision Transformer use attention_rollout)"
        )
    if x.dim() != 4:
        return f"Grad-CAM explains images (N, C, H, W), got inputs of shape {tuple(x.shape)}"
    return None


def stage_activations_and_gradients(
    model: Backbone, x: torch.Tensor, target: torch.Tensor, stage: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, d score_target / d A): the stage's output (N, K, h, w) during model(x), and the target score's gradient there.

    The stage output is caught by a forward hook on `feature_stages()[stage]`, the same tensor
    `forward_intermediates(x, [stage])` returns; the sum of the N target scores is
    differentiated (each example's score depends only on its own map).
    """
    module = model.feature_stages()[stage]
    caught: list[torch.Tensor] = []

    def catch(mod: nn.Module, args: Any, output: Any) -> None:
        caught.append(output[0] if isinstance(output, tuple) else output)

    hook = module.register_forward_hook(catch)
    try:
        with torch.enable_grad():
            logits = model(x)
            if not caught:
                raise UserError(f"{type(model).__name__}'s stage {stage} did not run in forward(); its feature_stages() are not on the forward path")
            activation = caught[-1]
            score = logits.gather(1, target[:, None]).sum()
            (gradient,) = torch.autograd.grad(score, activation)
    finally:
        hook.remove()
    return activation.detach(), gradient.detach()


def grad_cam_map(activation: torch.Tensor, gradient: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU(sum_k mean_ij(grad_k) A_k), (N, 1, h, w), upsampled bilinearly to `size`: (N, 1, H, W)."""
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))  # (N, 1, h, w)
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)


@register_explainer("grad_cam", aliases=("gradcam",))
class GradCAMExplainer(Explainer):
    """Grad-CAM (Selvaraju et al. 2017) on a Backbone's feature stage `stage` (-1: the last feature map), (N, 1, H, W).

    Needs a `deepstrata.models.base.Backbone` whose feature_format is "NCHW" (LeNet, small_cnn,
    ResNet, VGG, ...); the map is upsampled bilinearly (align_corners=False) to the input size.
    """

    needs = "feature_map"

    def __init__(self, *, stage: int = -1) -> None:
        self.stage = stage

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or feature_map_reason(model, x, self.stage)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("grad_cam", x, target)
        activation, gradient = stage_activations_and_gradients(model, x, target, self.stage)  # type: ignore[arg-type]
        return grad_cam_map(activation, gradient, (x.shape[-2], x.shape[-1]))


@register_explainer("guided_grad_cam", aliases=("guided_gradcam",))
class GuidedGradCAMExplainer(GradCAMExplainer):
    """Guided Grad-CAM (Selvaraju et al. 2017): the upsampled Grad-CAM map x guided backprop's gradients, shaped like x.

    Guided backpropagation (Captum GuidedBackprop) passes only positive gradients back through
    each `nn.ReLU` module; the map is broadcast over the input's channels. Its settings and what
    it needs are Grad-CAM's.
    """

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cam = super().attribute(model, x, target)
        target = check_batch("guided_grad_cam", x, target)
        with torch.enable_grad(), quiet_hooks():
            guided = GuidedBackprop(model).attribute(leaf_input(x), target=target).detach()
        return guided * cam
