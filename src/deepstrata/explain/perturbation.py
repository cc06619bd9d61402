"""Perturbation attributions: switch parts of the input off and watch the class score.

Problem: gradient methods need a differentiable model and describe it locally; a question a user
can check by hand is "what happens to the score without this region / this feature?".
Idea: three registered methods that only call the model forward, on Captum's implementations.
- `occlusion` (Zeiler & Fergus 2014): slide a window over the input, replace it by a baseline
  value, and credit every covered feature with the average drop of the score.
- `kernel_shap` (Lundberg & Lee 2017): Shapley values of the interpretable features, estimated
  by a weighted linear regression over random coalitions drawn with the Shapley kernel; a
  feature outside the coalition takes the baseline value (interventional, one reference).
- `lime` (Ribeiro, Singh & Guestrin 2016): a sparse linear model (Lasso) fitted to the scores
  of random coalitions, weighted by their closeness to the input.

Interpretable features ("superpixels"): for images (N, C, H, W) a fixed grid of `patch` x
`patch` squares, all channels of a square together (ceil(H / patch) x ceil(W / patch)
features: 49 on MNIST at patch 4); no segmentation algorithm, so regions do not follow the
image's edges. For any other input (a table (N, F)) every feature is its own. KernelSHAP and
LIME fit one model per input, so they cost `n_samples` forward passes per input; the
coalitions come from a generator seeded with `seed` on every call (the caller's random state
is restored), so a call is repeatable; the inputs draw in batch order, so an input's
coalitions depend on its place in the batch (not with every coalition taken, below).

KernelSHAP with few features: Captum samples coalitions with replacement, so its estimate
converges slowly (on an 8-feature MLP, still 0.01 off the exact values after 4,000 samples;
tests/explain/test_shapley.py). When `n_samples` covers all 2^M coalitions, the explainer
instead enumerates each coalition once, weighted by the Shapley kernel
(M - 1) / (C(M, |S|) |S| (M - |S|)), and fits the same weighted regression (Captum's LimeBase
and linear model); by Lundberg & Lee's Theorem 2 that regression's solution is the exact
Shapley values, as the shap library's KernelExplainer does when it can afford every coalition.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from captum.attr import KernelShap, Lime, Occlusion
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.explain.base import Explainer, check_batch, seeded
from deepstrata.registry import register_explainer


def feature_mask(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(1, ...) int64 ids of the interpretable feature each input element belongs to (see the module docstring)."""
    if x.dim() == 4:
        _, c, h, w = x.shape
        rows = torch.arange(h, device=x.device) // patch
        cols = torch.arange(w, device=x.device) // patch
        ids = rows[:, None] * math.ceil(w / patch) + cols[None, :]  # (H, W)
        return ids.expand(1, c, h, w).contiguous()
    return torch.arange(x[0].numel(), device=x.device).reshape(1, *x.shape[1:])


def float_inputs_reason(name: str, x: torch.Tensor) -> str | None:
    if not torch.is_floating_point(x):
        return f"{name} replaces input features by a baseline value, but these inputs are {x.dtype} ids; use layer_integrated_gradients for text models"
    return None


class EveryCoalitionKernelShap(KernelShap):
    """Captum's KernelShap fed every coalition once, Shapley-kernel weighted, instead of kernel-distributed samples."""

    def kernel_shap_perturb_generator(self, original_inp: Any, **kwargs: Any) -> Iterator[torch.Tensor]:
        m = int(kwargs["num_interp_features"])
        device = original_inp.device if isinstance(original_inp, torch.Tensor) else original_inp[0].device
        bits = torch.arange(m, device=device)
        for s in range(2**m):
            yield ((s >> bits) & 1).long()[None, :]

    def kernel_shap_similarity_kernel(self, _: Any, __: Any, interpretable_sample: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        m, k = int(kwargs["num_interp_features"]), int(interpretable_sample.sum())
        if k in (0, m):
            return torch.tensor([self.inf_weight])  # the end points: v(empty) and v(all) are met (almost) exactly
        return torch.tensor([(m - 1) / (math.comb(m, k) * k * (m - k))])


class _PerInputSampler(Explainer):
    """KernelSHAP and LIME: one Captum fit per input of the batch, under one seeded random state."""

    needs = "forward"
    name = ""
    every_coalition = False  # KernelSHAP's exact mode (see the module docstring); LIME has none

    def __init__(self, *, n_samples: int, patch: int, baseline: float, seed: int, perturbations_per_eval: int) -> None:
        if n_samples < 2 or patch < 1 or perturbations_per_eval < 1:
            raise ConfigError(f"{self.name} needs n_samples >= 2, patch >= 1, perturbations_per_eval >= 1; got {n_samples}, {patch}, {perturbations_per_eval}")
        self.n_samples, self.patch, self.baseline, self.seed = n_samples, patch, baseline, seed
        self.perturbations_per_eval = perturbations_per_eval

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or float_inputs_reason(self.name, x)

    def captum(self, model: nn.Module) -> KernelShap | Lime:  # pragma: no cover - abstract
        raise NotImplementedError

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch(self.name, x, target)
        mask = feature_mask(x, self.patch)
        method, n_samples = self.captum(model), self.n_samples
        features = int(mask.max()) + 1
        if self.every_coalition and features <= 20 and 2**features <= n_samples:
            method, n_samples = EveryCoalitionKernelShap(model), 2**features
        out = []
        with seeded(self.seed, x), torch.no_grad():
            for i in range(x.shape[0]):
                out.append(
                    method.attribute(
                        x[i : i + 1], baselines=self.baseline, target=target[i : i + 1], feature_mask=mask,
                        n_samples=n_samples, perturbations_per_eval=self.perturbations_per_eval,
                    )
                )  # fmt: skip
        return torch.cat(out).detach()


@register_explainer("kernel_shap")
class KernelShapExplainer(_PerInputSampler):
    """KernelSHAP (Lundberg & Lee 2017; Captum KernelShap): Shapley values of patches (images) or features, baseline `baseline`.

    `n_samples` coalitions per input, sampled by Captum; when they would cover all 2^M
    coalitions, each is taken once, kernel-weighted, which gives the exact Shapley values (see
    the module docstring); `every_coalition=False` keeps Captum's sampling regardless.
    """

    name = "kernel_shap"

    def __init__(
        self, *, n_samples: int = 300, patch: int = 4, baseline: float = 0.0, seed: int = 0, perturbations_per_eval: int = 50,
        every_coalition: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(n_samples=n_samples, patch=patch, baseline=baseline, seed=seed, perturbations_per_eval=perturbations_per_eval)
        self.every_coalition = every_coalition

    def captum(self, model: nn.Module) -> KernelShap:
        return KernelShap(model)


@register_explainer("lime")
class LimeExplainer(_PerInputSampler):
    """LIME (Ribeiro et al. 2016; Captum Lime with its defaults: Lasso alpha 0.01, exponential cosine kernel) over patches or features."""

    name = "lime"

    def __init__(self, *, n_samples: int = 300, patch: int = 4, baseline: float = 0.0, seed: int = 0, perturbations_per_eval: int = 50) -> None:
        super().__init__(n_samples=n_samples, patch=patch, baseline=baseline, seed=seed, perturbations_per_eval=perturbations_per_eval)

    def captum(self, model: nn.Module) -> Lime:
        return Lime(model)


@register_explainer("occlusion")
class OcclusionExplainer(Explainer):
    """Occlusion (Zeiler & Fergus 2014; Captum Occlusion): the score's drop when a window is set to `baseline`.

    Images: a `window` x `window` square over all channels, moved by `stride` (both clipped to
    the image size). Any other input (tables): one feature at a time.
    """

    needs = "forward"

    def __init__(self, *, window: int = 4, stride: int = 2, baseline: float = 0.0, perturbations_per_eval: int = 32) -> None:
        if window < 1 or stride < 1 or perturbations_per_eval < 1:
            raise ConfigError(f"occlusion needs window, stride, perturbations_per_eval >= 1; got {window}, {stride}, {perturbations_per_eval}")
        self.window, self.stride, self.baseline, self.perturbations_per_eval = window, stride, baseline, perturbations_per_eval

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or float_inputs_reason("occlusion", x)

    def windows(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(sliding window shape, strides) over one input: (C, w, w), (C, s, s) for images, ones otherwise."""
        if x.dim() == 4:
            c, h, w = x.shape[1:]
            side = (min(self.window, h), min(self.window, w))
            return (c, *side), (c, min(self.stride, side[0]), min(self.stride, side[1]))
        ones = tuple(1 for _ in x.shape[1:])
        return ones, ones

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("occlusion", x, target)
        window, strides = self.windows(x)
        with torch.no_grad():
            out = Occlusion(model).attribute(
                x, sliding_window_shapes=window, strides=strides, baselines=self.baseline, target=target,
                perturbations_per_eval=self.perturbations_per_eval,
            )  # fmt: skip
        return out.detach()
