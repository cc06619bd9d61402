"""DeepLIFT and the SHAP approximations built on it and on gradients: DeepLIFT-SHAP and GradientSHAP.

Problem: a gradient describes an infinitesimal change, so a saturated unit (a ReLU that is off,
a sigmoid near 1) hides how much the input's difference from a reference contributed.
Idea: DeepLIFT (Shrikumar, Greenside & Kundaje 2017) back-propagates differences from a
reference input instead of gradients: at each non-linearity the multiplier is
(f(x) - f(x')) / (x - x') (the Rescale rule), so the attributions sum exactly to
F(x) - F(x') ("summation to delta"). DeepLIFT-SHAP averages DeepLIFT over a background set of
references, approximating SHAP values with that set as the expected input (Lundberg & Lee
2017, "DeepSHAP"); GradientSHAP averages input-x-gradient at random points between x (plus
noise) and random references of the set, the expected-gradients estimate of SHAP values.
All three run on Captum.

The background (a "small set" of references), two choices. `background="noise"` (default):
`background_size` (16) references drawn around the constant input `baseline` (0) with
N(0, sigma^2) noise, sigma = `noise` (0.15, in the model's input units: 15% of the range of
[0, 1] images), from a generator seeded with `seed`; an input's attributions then do not
depend on which other inputs share its batch (DeepLIFT-SHAP: exactly; GradientSHAP's draws
come in batch order),
and one input can be explained alone. `background="batch"`: up to `background_size` inputs of
the batch itself (a seeded random choice), real examples of the data as SHAP's expected input
intends, at the price of attributions that change with the batch; a batch of one input has no
background and is refused (`why_not`). Neither is a sample of the training set, which an
explainer called as attribute(model, x, target) does not see.

Captum's DeepLIFT hooks `nn` modules: each ReLU-like module stores its input and output of the
forward pass and must run once per forward; an in-place module loses its input. This project's
ResNet reuses one in-place `nn.ReLU` per block (and one in the stem). The explainer then works
on a copy of the model in which each reused module becomes a small dispatcher holding one fresh,
non-in-place copy per call (calls are counted in order during a forward pass, as a static
network makes them), and every in-place flag is off; the user's model is never changed. A
non-linearity that DeepLIFT's rules do not cover (GELU, SiLU, LayerNorm, attention) would be
differentiated as plain gradients and break summation to delta: such models are refused. One
applied as a function (F.gelu), which no look at the modules can see, is caught afterwards:
`deeplift` warns when its sums miss F(x) - F(x') by more than max-pooling's approximate rule
explains.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from captum.attr import DeepLift, DeepLiftShap, GradientShap
from torch import nn

from deepstrata.errors import ConfigError, UserError
from deepstrata.explain.base import Explainer, check_batch, constant_baseline, leaf_input, quiet_hooks, seeded
from deepstrata.registry import register_explainer

# The module types DeepLIFT has a rule for in Captum (its SUPPORTED_NON_LINEAR).
RULED = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Softmax)
# Non-linear modules it has no rule for: their plain gradient would replace the Rescale rule.
UNRULED = (
    nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.ReLU6, nn.PReLU, nn.SELU, nn.CELU, nn.GLU,
    nn.LogSoftmax, nn.Softsign, nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.LSTM, nn.GRU, nn.RNN, nn.Embedding,
)  # fmt: skip


def unruled_reason(model: nn.Module) -> str | None:
    """Why DeepLIFT's rules do not cover `model`'s non-linearities, or None when they do."""
    found = sorted({type(m).__name__ for m in model.modules() if isinstance(m, UNRULED)})
    if not found:
        return None
    return (
        f"{type(model).__name__} has {', '.join(found)} modules, for which DeepLIFT has no rule (Captum's cover ReLU, "
        "ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool and Softmax); their plain gradients would break summation "
        "to delta, so use integrated_gradients or gradient_shap instead"
    )


def call_counts(model: nn.Module, x: torch.Tensor) -> dict[nn.Module, int]:
    """How many times each ruled non-linear module runs in one forward pass of `model` on `x[:1]`."""
    counts: dict[nn.Module, int] = {}

    def count(module: nn.Module, args: Any) -> None:
        counts[module] = counts.get(module, 0) + 1

    hooks = [m.register_forward_pre_hook(count) for m in model.modules() if isinstance(m, RULED)]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return counts


class PerCall(nn.Module):
    """Stands for a module that a forward pass calls k times: the i-th call runs the i-th of k fresh copies.

    Calls are counted modulo k (a static network calls its modules in the same order on every
    pass), so each copy runs once per forward pass, as Captum's DeepLIFT hooks require.
    """

    def __init__(self, module: nn.Module, calls: int) -> None:
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(*args, **kwargs)


def deeplift_ready(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """`model` itself when each ruled module runs once and none is in place, else a copy made so (see the module docstring)."""
    counts = call_counts(model, x)
    reused = {m: k for m, k in counts.items() if k > 1}
    if not reused and not any(getattr(m, "inplace", False) for m in counts):
        return model
    memo: dict[int, Any] = {}
    clone = copy.deepcopy(model, memo)  # memo maps id(original) -> its copy
    for module in counts:
        if getattr(module, "inplace", False):
            memo[id(module)].inplace = False
    stand_ins = {id(memo[id(m)]): PerCall(memo[id(m)], k) for m, k in reused.items()}
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            if child is not None and id(child) in stand_ins:
                setattr(parent, name, stand_ins[id(child)])  # every place that holds it: one counter for all its calls
    return clone


def warn_if_incomplete(model: nn.Module, x: torch.Tensor, attributions: torch.Tensor, delta: torch.Tensor) -> None:
    """Warn when DeepLIFT's attributions miss F(x) - F(x') by more than max-pooling's approximate rule explains.

    A non-linearity called as a function (F.gelu) rather than a module is invisible to the
    rules, and gets its plain gradient: the sums then drift from the score differences. The
    tolerance, 5% of |F(x) - F(x')| + 1e-3, leaves room for Captum's MaxPool rule, which is not
    exact (about 2e-4 on the tests' small CNN).
    """
    import warnings

    gap = attributions.detach().flatten(1).sum(1) - delta.detach()  # = F(x) - F(x')
    if bool((delta.detach().abs() > 0.05 * gap.abs() + 1e-3).any()):
        warnings.warn(
            f"deeplift on {type(model).__name__}: the attributions miss F(x) - F(baseline) by up to "
            f"{float(delta.abs().max()):.3g}; the model probably applies a non-linearity as a function rather than a module, "
            "which DeepLIFT's rules do not see; prefer integrated_gradients for it",
            stacklevel=3,
        )


def lone_input_reason(background: str, x: torch.Tensor) -> str | None:
    if background == "batch" and x.shape[0] < 2:
        return "background='batch' draws its references from the other inputs of the batch, but the batch holds one input; explain several inputs at once, or use background='noise'"
    return None


def pick_background(where: str, x: torch.Tensor, kind: str, size: int, baseline: float, noise: float, seed: int) -> torch.Tensor:
    """The background references (B, ...) for a batch `x` (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "batch":
        if x.shape[0] < 2:
            raise UserError(
                f"{where}: background='batch' draws its references from the other inputs of the batch, but the batch holds "
                "one input; explain several inputs at once, or set background='noise'"
            )
        order = torch.randperm(x.shape[0], generator=generator)[:size]
        return x[order.to(x.device)].detach()
    draws = torch.randn((size, *x.shape[1:]), generator=generator).to(device=x.device, dtype=x.dtype)
    return constant_baseline(x[:1], baseline).expand(size, *x.shape[1:]) + noise * draws


@register_explainer("deeplift")
class DeepLiftExplainer(Explainer):
    """DeepLIFT, Rescale rule (Shrikumar et al. 2017; Captum DeepLift) from the constant reference input `baseline`.

    Attributions sum to F(x) - F(baseline). Models with non-linear modules DeepLIFT has no rule
    for (GELU, LayerNorm, attention, ...) are refused; reused or in-place ReLUs are handled on a copy.
    """

    needs = "gradients"

    def __init__(self, *, baseline: float = 0.0) -> None:
        self.baseline = baseline

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or unruled_reason(model)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("deeplift", x, target)
        with torch.enable_grad(), quiet_hooks():
            out, delta = DeepLift(deeplift_ready(model, x)).attribute(
                leaf_input(x), baselines=constant_baseline(x, self.baseline), target=target, return_convergence_delta=True
            )
        warn_if_incomplete(model, x, out, delta)
        return out.detach()


@register_explainer("deeplift_shap")
class DeepLiftShapExplainer(Explainer):
    """DeepLIFT-SHAP (Lundberg & Lee 2017; Captum DeepLiftShap): DeepLIFT averaged over a background set of references.

    background "noise" (default: `background_size` references around the constant `baseline`,
    sigma = `noise` in input units) or "batch" (up to `background_size` inputs of the batch);
    see the module docstring.
    """

    needs = "gradients"

    def __init__(
        self, *, background: Literal["noise", "batch"] = "noise", background_size: int = 16, baseline: float = 0.0,
        noise: float = 0.15, seed: int = 0,
    ) -> None:  # fmt: skip
        if background_size < 1:
            raise ConfigError(f"deeplift_shap.background_size must be >= 1, got {background_size}")
        self.background, self.background_size, self.baseline, self.noise, self.seed = background, background_size, baseline, noise, seed

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or unruled_reason(model) or lone_input_reason(self.background, x)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("deeplift_shap", x, target)
        refs = pick_background("deeplift_shap", x, self.background, self.background_size, self.baseline, self.noise, self.seed)
        if refs.shape[0] < 2:  # Captum's DeepLiftShap needs at least two references
            refs = torch.cat([refs, refs])
        with torch.enable_grad(), quiet_hooks():
            out = DeepLiftShap(deeplift_ready(model, x)).attribute(leaf_input(x), baselines=refs, target=target)
        return out.detach()


@register_explainer("gradient_shap")
class GradientShapExplainer(Explainer):
    """GradientSHAP (Lundberg & Lee 2017; Captum GradientShap): expected input-x-gradient between x and a background.

    For each input, `samples` random pairs (reference r from the background, point
    r + u (x + noise - r), u ~ U(0, 1)); `stdev` adds N(0, (stdev x range)^2) noise to x (0: none).
    background as for deeplift_shap. The draws come from a generator seeded with `seed` per call.
    """

    needs = "gradients"

    def __init__(
        self, *, samples: int = 20, stdev: float = 0.0, background: Literal["noise", "batch"] = "noise",
        background_size: int = 16, baseline: float = 0.0, noise: float = 0.15, seed: int = 0,
    ) -> None:  # fmt: skip
        if samples < 1 or background_size < 1:
            raise ConfigError(f"gradient_shap needs samples >= 1 and background_size >= 1, got {samples}, {background_size}")
        self.samples, self.stdev, self.background, self.background_size = samples, stdev, background, background_size
        self.baseline, self.noise, self.seed = baseline, noise, seed

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or lone_input_reason(self.background, x)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_applies(model, x)
        target = check_batch("gradient_shap", x, target)
        refs = pick_background("gradient_shap", x, self.background, self.background_size, self.baseline, self.noise, self.seed)
        stdev = float(self.stdev * (x.max() - x.min()))
        with seeded(self.seed, x), torch.enable_grad():
            out = GradientShap(model).attribute(leaf_input(x), baselines=refs, n_samples=self.samples, stdevs=stdev, target=target)
        return out.detach()
