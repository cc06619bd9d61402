"""OOD: does a trained classifier notice inputs unlike its training data, and which score says so best?

Problem: a classifier answers every input with a class, including inputs from nowhere near its
training data (clothes shown to a digit model, noise); whether its outputs or features can flag
them depends on the score, and papers' numbers come from other models and other data.
Idea: fit every out-of-distribution scorer (`learned/ood_*`: MSP, max logit, energy, ODIN,
Mahalanobis, deep nearest neighbours, MC dropout) on the run's TRAINING split only, score the
run's test split (in-distribution) and an out-set brought to the run's input form
(`data.ood_sets`), and report for each score AUROC, AUPR-in, AUPR-out and FPR at 95% TPR
(`metrics.ood`), with histograms and ROC curves (Hendrycks & Gimpel 2017's protocol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepstrata.errors import UserError, did_you_mean
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import input_tensor, require_classifier

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch.utils.data import DataLoader, Dataset

    from deepstrata.learned.ood_base import OODScorer


@register_tool("ood", kind="analysis", report="trust")
def ood(
    run: Run,
    *,
    ood_data: str = "gaussian",
    scores: list[str] = [],  # noqa: B006 - read, never mutated; empty: every score that applies to the model
    limit: int = 0,
    fit_limit: int = 0,
    seed: int = 0,
) -> Analysis:
    """AUROC, AUPR-in/out and FPR95 of each OOD score: the run's test split against `ood_data`.

    ood_data: a registered dataset (`fashion_mnist`, `mnist`, `digits`, ...), `gaussian` or
    `uniform` noise in the run's raw range, or a path (IDX file, .npy array, image folder).
    scores: which scores (msp, max_logit, energy, odin, mahalanobis, knn, mc_dropout, entropy); empty:
    every one that applies (mc_dropout needs dropout, mahalanobis/knn a Backbone).
    limit: at most this many in- and out-of-distribution inputs each (0: the whole test split
    and as many OOD inputs). fit_limit: fit on at most this many training inputs (0: all).
    seed: draws the subsets and the noise.
    """
    import torch

    from deepstrata.data.ood_sets import load_out_set
    from deepstrata.metrics.ood import ood_metrics
    if limit < 0 or fit_limit < 0:
        raise UserError(f"ood: limit and fit_limit must be >= 0 (0 = all), got limit={limit}, fit_limit={fit_limit}")
    require_classifier(run, "ood")
    phase("ood: loading the model")
    model = run.model()
    chosen, skipped = _scorers(scores, model)

    generator = torch.Generator().manual_seed(seed)
    test_loader = run.loader("test")
    phase("ood: reading the training and test inputs")
    x_train, y_train = _inputs(run, run.split("train"), test_loader, fit_limit, generator)
    x_in, _ = _inputs(run, run.split("test"), test_loader, limit, generator)
    phase(f"ood: building the out-set '{ood_data}'")
    out = load_out_set(ood_data, input_spec=dict(run.spec.get("input_spec", {})), count=limit or len(x_in), seed=seed, reference=x_in)
    x_out, _ = _inputs(run, _Unlabelled(out.x), test_loader, 0, generator)  # the run's every-split transforms, as for its test inputs

    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    fitted: list[OODScorer] = []
    for cls in chosen:
        name = cls.score_name
        phase(f"ood: {name}: fitting on {len(x_train)} training inputs, scoring {len(x_in)} + {len(x_out)}")
        scorer = cls().fit(model, x_train, y_train)
        fitted.append(scorer)
        s_in, s_out = scorer.score(model, x_in), scorer.score(model, x_out)
        found = ood_metrics(s_in, s_out)
        metrics.update({f"ood/{name}/{key}": value for key, value in found.items()})
        rows.append(
            {
                "score": name,
                **{key: round(value, 4) for key, value in found.items()},
                "flagged_in": round(float((s_in > scorer.threshold_).float().mean()), 4),
                "flagged_out": round(float((s_out > scorer.threshold_).float().mean()), 4),
            }
        )
        curves[name] = (s_in, s_out)

    best = max(rows, key=lambda r: r["auroc"])
    summary = (
        f"In-distribution: {len(x_in)} inputs of the run's test split; out: {out.description}. Every score was fitted on "
        f"{len(x_train)} training inputs only (no OOD data chose any setting); larger scores mean more out-of-distribution. "
        f"Best AUROC: {best['score']} {best['auroc']:.4f}. fpr95: share of OOD inputs accepted when 95% of test inputs are; "
        f"flagged_in/out: shares above the threshold that 95% of training inputs stay under."
        + (f" Skipped: {'; '.join(skipped)}." if skipped else "")
    )
    figures = {"histograms": _histograms(curves), "roc": _roc_figure(curves)}
    # the fitted scorers are saved with the result, for scoring new inputs without refitting:
    # saved_learned(run, "ood", "ood_energy").score(model, x)
    return Analysis(metrics=metrics, tables={"scores": rows}, figures=figures, summary=summary, learned=fitted)


# --------------------------------------------------------------------------------------
# The scorers and the inputs.
# --------------------------------------------------------------------------------------


def ood_scorers() -> list[type[OODScorer]]:
    """Every registered OOD scorer class, in table order (MSP first)."""
    from deepstrata.learned.ood_base import OODScorer
    from deepstrata.registry import REGISTRIES

    learned = REGISTRIES["learned"].load_all().values()
    return sorted((c for c in learned if isinstance(c, type) and issubclass(c, OODScorer)), key=lambda c: (c.order, c.score_name))


def _scorers(names: list[str], model: Any) -> tuple[list[type[OODScorer]], list[str]]:
    """The scorer classes asked for (all that apply when `names` is empty) and why others were skipped."""
    available = {c.score_name: c for c in ood_scorers()}
    if not names:
        chosen, skipped = [], []
        for cls in available.values():
            reason = cls.unsupported(model)
            if reason is None:
                chosen.append(cls)
            else:
                skipped.append(f"{cls.score_name} ({reason})")
        return chosen, skipped
    chosen = []
    for name in names:
        if name not in available:
            raise UserError(f"ood: unknown score '{name}'{did_you_mean(name, available)} (choices: {', '.join(available)})")
        reason = available[name].unsupported(model)
        if reason is not None:
            raise UserError(f"ood: score '{name}' cannot be used: {reason}")
        if available[name] not in chosen:
            chosen.append(available[name])
    return sorted(chosen, key=lambda c: c.order), []


class _Unlabelled:
    """A dataset of inputs with a dummy label, so the run's collate function takes them like test rows."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], 0


def _inputs(run: Run, dataset: Dataset | _Unlabelled, test_loader: DataLoader, limit: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs (N, *shape) and labels (N,) of a dataset, through the test loader's collate
    (the run's evaluation transforms); a seeded subset of `limit` rows when 0 < limit < len."""
    import torch
    from torch.utils.data import DataLoader, Subset

    if 0 < limit < len(dataset):
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=generator)[:limit].sort().values.tolist())
    loader = DataLoader(dataset, batch_size=test_loader.batch_size or 256, shuffle=False, collate_fn=test_loader.collate_fn)
    return input_tensor(run, loader=loader, tool="ood")


# --------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------


def _histograms(curves: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig = Figure(figsize=(4 * cols, 2.8 * rows))
    for i, (name, (s_in, s_out)) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        both = [float(s_in.min()), float(s_out.min()), float(s_in.max()), float(s_out.max())]
        bins = [min(both) + (max(both) - min(both)) * j / 40 for j in range(41)] if max(both) > min(both) else 10
        ax.hist(s_in.numpy(), bins=bins, alpha=0.6, density=True, label="in (test)")
        ax.hist(s_out.numpy(), bins=bins, alpha=0.6, density=True, label="out")
        ax.set_title(name)
        ax.set_xlabel("score (larger = more OOD)")
        if i == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _roc_figure(curves: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Any:
    from matplotlib.figure import Figure

    from deepstrata.metrics.ood import ood_labels_and_scores, roc_auc, roc_curve

    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    for name, (s_in, s_out) in curves.items():
        is_out, s = ood_labels_and_scores(s_in, s_out)
        fpr, tpr, _ = roc_curve(is_out, s)
        ax.plot(fpr, tpr, label=f"{name} ({roc_auc(is_out, s):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate (in flagged)")
    ax.set_ylabel("true-positive rate (out flagged)")
    ax.set_title("ROC: out-of-distribution as positive")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
