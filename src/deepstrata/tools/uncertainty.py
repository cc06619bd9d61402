"""`strata uncertainty RUN`: how well each way of estimating predictive uncertainty serves one run's model.

Problem: a softmax, MC dropout, a last-layer Laplace posterior and a deep ensemble each turn one
trained recipe into class probabilities, and the choice between them is a trade of compute
for honesty that should be measured on the run's own test data, not quoted from papers.
Idea: compute each method's predictive probabilities on the test split and score them the same
way: accuracy, negative log-likelihood, expected calibration error (15 equal-width bins,
torchmetrics' `MulticlassCalibrationError(norm="l1")`), Brier score, and for selective
prediction the AURC and the error at a coverage (90% by default) when the least confident
inputs are left unanswered (Geifman & El-Yaniv 2017). Sampling methods also report the mean
predictive entropy and mutual information (epistemic part). Methods:
- softmax: the model's own softmax, one pass.
- mc_dropout: the mean of `mc_samples` passes with only the dropout layers on (Gal & Ghahramani 2016).
- laplace: a last-layer Laplace posterior fitted on the training split's pre-logit features,
  prior precision by marginal likelihood, probit predictive (`learned/last_layer_laplace.py`).
- ensemble: the members of an ensemble run, or this run with `--members` (Lakshminarayanan et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from deepstrata.errors import UserError, did_you_mean
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import labelled_batches, require_classifier

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclass
class _Context:
    """What every method needs: the run, its model and task, the split's inputs and labels, the tool's arguments."""

    run: Run
    model: nn.Module
    task: Any
    batches: list[tuple[Any, ...]]  # model inputs per batch
    labels: torch.Tensor  # (N,)
    mc_samples: int
    members: list[Run]  # the other runs of the recipe, checked (tools/ensemble.py)
    seed: int
    notes: dict[str, str] = field(default_factory=dict)  # method -> what it fitted or used, for the summary


@dataclass(frozen=True)
class _Method:
    """`predict(ctx)` -> (probabilities (N, K), samples (S, N, K) or None); `why_not(ctx)` -> None or why it does not apply."""

    predict: Callable[[_Context], tuple[torch.Tensor, torch.Tensor | None]]
    why_not: Callable[[_Context], str | None]


@register_tool("uncertainty", kind="analysis", report="trust")
def uncertainty(
    run: Run,
    *,
    methods: list[str] = [],  # noqa: B006 - read, never mutated
    mc_samples: int = 20,
    members: list[str] = [],  # noqa: B006 - read, never mutated
    split: Literal["val", "test"] = "test",
    coverage: float = 0.9,
    seed: int = 0,
) -> Analysis:
    """Predictive uncertainty per method (softmax, mc_dropout, laplace, ensemble): NLL, ECE, Brier, AURC, error at a coverage.

    methods: which to compare, e.g. --methods softmax,mc_dropout; empty: every method that applies to the run.
    mc_samples: stochastic passes of mc_dropout. members: other runs of the recipe for the ensemble method.
    split: where the methods are scored. coverage: the share of most confident inputs answered for error_at_<coverage>.
    seed: seed of the dropout masks.
    """
    import torch

    require_classifier(run, "uncertainty")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"uncertainty: unknown method '{unknown[0]}'{did_you_mean(unknown[0], list(METHODS))} (choices: {', '.join(METHODS)})")
    if mc_samples < 1:
        raise UserError(f"uncertainty: mc_samples must be >= 1, got {mc_samples}; e.g. --mc-samples 20")
    if not 0.0 < coverage <= 1.0:
        raise UserError(f"uncertainty: coverage must lie in (0, 1], got {coverage}; e.g. --coverage 0.9")

    from deepstrata.tools.ensemble import member_runs

    others = member_runs(run, members) if members else []  # refused now, not after the other methods ran
    phase(f"uncertainty: loading the model and the {split} split")
    model = run.model()
    task = run.task()
    batches, labels = [], []
    for inputs, y in labelled_batches(run, split):
        batches.append(inputs)
        labels.append(y)
    ctx = _Context(run, model, task, batches, torch.cat(labels), mc_samples, others, seed)

    chosen = list(dict.fromkeys(methods)) or [m for m, method in METHODS.items() if method.why_not(ctx) is None]
    rows, metrics, curves = [], {}, {}
    for name in chosen:
        phase(f"uncertainty: {name}")
        probs, samples = METHODS[name].predict(ctx)
        row = score(probs, ctx.labels, samples=samples, coverage=coverage)
        rows.append({"method": name, **{k: round(v, 6) for k, v in row.items()}})
        metrics.update({f"{split}/{name}/{k}": v for k, v in row.items()})
        curves[name] = probs
    skipped = {m: why for m, method in METHODS.items() if m not in chosen and (why := method.why_not(ctx)) is not None}
    best = min(rows, key=lambda r: r["nll"])
    at = f"error_at_{coverage * 100:g}"
    summary = (
        f"{len(ctx.labels)} {split} inputs. Lowest NLL: {best['method']} ({best['nll']:.4f}; error {best[at]:.4f} at {coverage:.0%} coverage "
        f"against {best['error']:.4f} answering all). ECE: 15 equal-width bins, L1. "
        + " ".join(f"{m}: {note}." for m, note in ctx.notes.items())
        + (" Not run: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()) + "." if skipped and not methods else "")
    )
    figures = {"risk_coverage": _risk_coverage_figure(curves, ctx.labels)}
    return Analysis(metrics=metrics, tables={"methods": rows}, figures=figures, summary=summary)


def score(probs: torch.Tensor, labels: torch.Tensor, *, samples: torch.Tensor | None = None, coverage: float = 0.9) -> dict[str, float]:
    """Accuracy, NLL, ECE, Brier, AURC, error at `coverage` and at full coverage of probabilities (N, K).

    With `samples` (S, N, K) also the mean predictive entropy and mutual information (nats).
    """
    import torch
    from torchmetrics.classification import MulticlassCalibrationError

    from deepstrata.metrics.selective import aurc, risk_at_coverage
    from deepstrata.metrics.uncertainty import mutual_information, predictive_entropy

    p = probs.detach().cpu().double()
    y = labels.detach().cpu().long()
    confidence, predicted = p.max(1)
    correct = predicted == y
    ece = MulticlassCalibrationError(num_classes=p.shape[1], n_bins=15, norm="l1")
    out = {
        "accuracy": float(correct.double().mean()),
        "nll": float(-p[torch.arange(len(y)), y].clamp_min(1e-12).log().mean()),
        "ece": float(ece(p.float(), y)),
        "brier": float((p - torch.nn.functional.one_hot(y, p.shape[1]).double()).square().sum(1).mean()),
        "aurc": aurc(confidence, correct),
        f"error_at_{coverage * 100:g}": risk_at_coverage(confidence, correct, coverage),
        "error": float(1.0 - correct.double().mean()),
    }
    if samples is not None:
        s = samples.detach().cpu().double()
        out["entropy"] = float(predictive_entropy(s).mean())
        out["mutual_information"] = float(mutual_information(s).mean())
    return out


# ------------------------------------------------------------------ the methods


def _softmax(ctx: _Context) -> tuple[torch.Tensor, None]:
    import torch

    with torch.no_grad():
        return torch.cat([torch.softmax(ctx.model(*inputs), dim=1) for inputs in ctx.batches]), None


def _mc_dropout(ctx: _Context) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    from deepstrata.nn.mc_dropout import check_has_dropout, mc_dropout_probs

    active = check_has_dropout(ctx.model, where="uncertainty --methods mc_dropout")
    samples = torch.cat([mc_dropout_probs(ctx.model, ctx.model, inputs, samples=ctx.mc_samples, seed=ctx.seed + i) for i, inputs in enumerate(ctx.batches)], dim=1)
    ctx.notes["mc_dropout"] = f"{ctx.mc_samples} passes, {len(active)} dropout layer(s) on, p = {sorted({float(m.p) for m in active})}"
    return samples.mean(0), samples


def _mc_dropout_why_not(ctx: _Context) -> str | None:
    from deepstrata.nn.mc_dropout import dropout_modules

    return None if dropout_modules(ctx.model) else "the model has no active dropout layer"


def _laplace(ctx: _Context) -> tuple[torch.Tensor, None]:
    import torch
    from torch.utils.data import DataLoader

    from deepstrata.learned.last_layer_laplace import LastLayerLaplace

    why = _laplace_why_not(ctx)
    if why is not None:
        raise UserError(f"uncertainty --methods laplace: {why}; a last-layer Laplace needs a Backbone whose head is one nn.Linear")
    model = ctx.model
    head = model.head

    def features(inputs: tuple[Any, ...]) -> torch.Tensor:
        return model.forward_head(model.forward_features(*inputs), pre_logits=True)

    train = ctx.run.split("train")  # the training rows without augmentation, in order
    feats, ys = [], []
    with torch.no_grad():
        for inputs, y in labelled_batches(ctx.run, loader=DataLoader(train, batch_size=ctx.run.recipe.data.eval_batch_size, shuffle=False)):
            phi = features(inputs)
            if not feats and not torch.allclose(head(phi), model(*inputs), rtol=1e-4, atol=1e-4):
                # The posterior is over the map features -> head; if that is not the model's output, it describes another model.
                raise UserError(f"uncertainty --methods laplace: {type(model).__name__}.head(pre-logit features) is not the model's output; its head is not the last layer")
            feats.append(phi)
            ys.append(y)
        la = LastLayerLaplace().fit(torch.cat(feats), torch.cat(ys), head.weight, head.bias)
        probs = torch.cat([la.predict_proba(features(inputs)) for inputs in ctx.batches])
    ctx.notes["laplace"] = f"prior precision {la.prior_precision_:.4g} by marginal likelihood on {len(train)} training inputs, probit predictive"
    return probs, None


def _laplace_why_not(ctx: _Context) -> str | None:
    from torch import nn

    from deepstrata.models.base import Backbone

    if not isinstance(ctx.model, Backbone):
        return f"{type(ctx.model).__name__} is not a Backbone (no pre-logit features)"
    if not isinstance(ctx.model.head, nn.Linear):
        return f"its head is a {type(ctx.model.head).__name__}, not one nn.Linear"
    return None


def _ensemble(ctx: _Context) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    from deepstrata.models.ensemble import EnsembleModel

    models = list(ctx.model.members) if isinstance(ctx.model, EnsembleModel) else [ctx.model]
    models += [member.model() for member in ctx.members]
    if len(models) < 2:
        raise UserError(
            f"uncertainty --methods ensemble needs several members: give the other runs of the recipe with --members RUN2,RUN3, "
            f"or run it on an ensemble run (strata ensemble {ctx.run.path} --members ...)"
        )
    with torch.no_grad():
        samples = torch.stack([torch.cat([torch.softmax(m(*inputs), dim=1) for inputs in ctx.batches]) for m in models])  # (M, N, K)
    ctx.notes["ensemble"] = f"{len(models)} members"
    return samples.mean(0), samples


def _ensemble_why_not(ctx: _Context) -> str | None:
    from deepstrata.models.ensemble import EnsembleModel

    return None if ctx.members or isinstance(ctx.model, EnsembleModel) else "no --members given and the run is not an ensemble"


METHODS: dict[str, _Method] = {
    "softmax": _Method(_softmax, lambda ctx: None),
    "mc_dropout": _Method(_mc_dropout, _mc_dropout_why_not),
    "laplace": _Method(_laplace, _laplace_why_not),
    "ensemble": _Method(_ensemble, _ensemble_why_not),
}


def _risk_coverage_figure(curves: dict[str, torch.Tensor], labels: torch.Tensor) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    from deepstrata.metrics.selective import risk_coverage_curve

    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for name, probs in curves.items():
        confidence, predicted = probs.detach().cpu().max(1)
        coverage, risk = risk_coverage_curve(confidence, predicted == labels.cpu())
        ax.plot(coverage.numpy(), risk.numpy(), label=name)
    ax.set_xlabel("coverage (most confident first)")
    ax.set_ylabel("selective risk (error rate)")
    ax.set_title("Risk-coverage curves")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
