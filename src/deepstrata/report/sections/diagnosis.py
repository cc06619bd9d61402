"""Diagnosis from the learning curves and the task's own quality metric: a verdict it can support.

Problem: loss curves alone mislead: a 98.5% classifier whose loss falls slowly is not
underfitting, a char-GPT worse than a bigram is not healthy, a seq2seq model with 0 exact match
is failing however smooth its loss, and a GAN's two losses are a game, not a fit. Idea: apply the
textbook curve tests in order of urgency (non-finite values or spikes -> unstable; train far
better than validation -> overfitting), then judge the model by the metric its task names
(`Task.quality`: bits/char against the bigram, exact match, accuracy against the majority class
and the classical baselines, MAE against persistence) before saying underfitting or healthy, and
say nothing for tasks whose curves do not show fit (Goodfellow, Bengio & Courville 2016, ch. 5.2
and 11; Smith 2018, "A disciplined approach to neural network hyper-parameters").
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from deepstrata.errors import DeepstrataError
from deepstrata.registry import register_report_section
from deepstrata.report.html import Section
from deepstrata.run.run import Run
from deepstrata.tasks.base import Quality

FIXES = {
    "unstable": [
        "lower the learning rate (or add warm-up)",
        "clip gradients (e.g. a gradient-norm clipping callback)",
        "check the data for non-finite values; normalise the inputs",
    ],
    "overfitting": [
        "add dropout or weight decay",
        "augment the data or collect more of it",
        "stop early at the best validation epoch (early stopping)",
        "use a smaller model",
    ],
    "underfitting": [
        "give the model more capacity (wider or deeper)",
        "train for more epochs, or with a larger learning rate",
        "reduce regularisation (dropout, weight decay)",
    ],
    "healthy": ["nothing urgent: train and validation agree and the model beats the baselines it was compared with"],
    "no problem seen": [
        "the curves show no fault, but there is no baseline to judge the model's quality by: "
        "compare it with a simple one (for classification and regression: strata baseline RECIPE --run RUN_DIR)"
    ],
}

# Thresholds, named so the report can quote them.
SPIKE_FACTOR = 1.5  # an epoch's train loss above 1.5x the best earlier one is a spike
GAP_ACCURACY = 0.08  # train accuracy this far above validation accuracy is a generalisation gap
VAL_RISE = 1.10  # final validation loss 10% above its minimum, reached earlier, is "rising"
LOSS_GAP_FACTOR = 3.0  # validation loss this many times the train loss (and 0.05 above it) is a gap
CLOSE_TO_MAJORITY = 0.25  # accuracy less than a quarter of the way from the majority rate to 1 is "close"
CLEAR_MARGIN = 0.02  # 2 points of accuracy (or 2% of an error) below a classical baseline is "clearly below"
# Without a task (old runs, bare records), runs that log accuracy are judged by it alone.
ACCURACY = Quality("accuracy", good_at=0.8)


@dataclass
class Diagnosis:
    case: str  # "unstable" | "overfitting" | "underfitting" | "healthy" | "no problem seen"
    evidence: list[str] = field(default_factory=list)

    @property
    def fixes(self) -> list[str]:
        return FIXES[self.case]


@dataclass
class Judgement:
    """The quality metric against its baselines: "poor", "good" or "unknown", with the evidence."""

    verdict: str
    evidence: list[str] = field(default_factory=list)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _series(epochs: list[dict[str, Any]], key: str) -> list[Any]:
    return [r[key] for r in epochs if key in r and r[key] is not None]


def judge_quality(
    quality: Quality,
    epochs: list[dict[str, Any]],
    test: dict[str, Any] | None = None,
    *,
    majority: float | None = None,
    classical: tuple[str, float] | None = None,
) -> Judgement:
    """Judge `quality.metric` on the test record (else the last validation epoch) against its baselines.

    `majority` (the test rate of the most frequent class) and `classical` (the best model of
    baselines.json, with its test score) are test-split baselines the run holds outside its
    records. Logged baselines must be beaten outright; the classical one must not be clearly
    better; accuracy must not sit close to the majority rate.
    """
    m, higher = quality.metric, quality.higher_is_better
    test = test or {}
    if _finite(test.get(f"test/{m}")):
        split, record = "test", test
    else:
        last_val = [r for r in epochs if _finite(r.get(f"val/{m}"))]
        if not last_val:
            return Judgement("unknown", [f"no {m} was logged for validation or test"])
        split, record = "val", last_val[-1]
        majority = classical = None  # test-split numbers: not comparable with validation
    value = record[f"{split}/{m}"]
    better = "higher" if higher else "lower"
    poor: list[str] = []
    beaten: list[str] = []
    if quality.fails_at is not None and (value <= quality.fails_at if higher else value >= quality.fails_at):
        poor.append(f"{split} {m} is {value:.4g}: a failure whatever the loss curves show")
    for name in quality.baselines:
        base = record.get(f"{split}/{name}")
        if not _finite(base):
            continue
        if (value > base) if higher else (value < base):
            beaten.append(f"{split} {m} {value:.4g} beats the {name} baseline's {base:.4g} ({better} is better)")
        else:
            poor.append(f"{split} {m} {value:.4g} is no better than the {name} baseline's {base:.4g} ({better} is better)")
    if majority is not None:
        close = value - majority < CLOSE_TO_MAJORITY * (1.0 - majority)
        text = f"{split} {m} {value:.4g} against {majority:.4g} for always predicting the majority class"
        (poor if close else beaten).append(text + (" (close to it)" if close else ""))
    if classical is not None:
        name, base = classical
        worse_by = (base - value) if higher else (value - base) / max(abs(base), 1e-12)
        text = f"{split} {m} {value:.4g} against the classical {name}'s {base:.4g} ({better} is better)"
        (poor if worse_by > CLEAR_MARGIN else beaten).append(text + (" (clearly below it)" if worse_by > CLEAR_MARGIN else ""))
    if quality.good_at is not None:
        train = _series(epochs, f"train/{m}")
        bar = quality.good_at
        if (value < bar if higher else value > bar) and train and (train[-1] < bar if higher else train[-1] > bar):
            poor.append(f"train {m} {train[-1]:.4g} and {split} {m} {value:.4g} are both poor (bar: {bar})")
        elif not (poor or beaten) and (value >= bar if higher else value <= bar):
            beaten.append(f"{split} {m} {value:.4g} (good: past {bar} with no baseline to compare)")
    if poor:
        return Judgement("poor", poor)
    if beaten:
        return Judgement("good", beaten)
    return Judgement("unknown", [f"{split} {m} {value:.4g}, with no baseline to judge it by"])


def diagnose(
    epochs: list[dict[str, Any]],
    steps: list[dict[str, Any]] | None = None,
    *,
    quality: Quality | None = None,
    curves_show_fit: bool = True,
    test: dict[str, Any] | None = None,
    majority: float | None = None,
    classical: tuple[str, float] | None = None,
) -> Diagnosis | None:
    """Classify `scope: epoch` records (and `scope: step` records, for non-finite losses); None: nothing to say.

    `quality` is the task's (`Task.quality`); without one, runs that log accuracy are judged by it.
    `curves_show_fit=False` (generative tasks) limits the verdict to non-finite losses.
    `test` is the last test record; `majority` and `classical` as for `judge_quality`.
    """
    train_loss = _series(epochs, "train/loss")
    val_loss = _series(epochs, "val/loss")
    train_acc = _series(epochs, "train/accuracy")
    val_acc = _series(epochs, "val/accuracy")
    if not train_loss:
        return None
    # 1. unstable: non-finite values or spikes
    # metrics.jsonl stores NaN/Inf as null, so a loss key holding None was non-finite
    bad = [
        f"{k} at {r.get('scope', '?')} {r.get('step', r.get('epoch', '?'))}"
        for r in (epochs + list(steps or []))
        for k, v in r.items()
        if k.endswith("loss") and (v is None or (isinstance(v, float) and not math.isfinite(v)))
    ]
    if bad:
        return Diagnosis("unstable", [f"non-finite loss values recorded ({len(bad)} of them; first: {bad[0]})"])
    if not curves_show_fit:
        return None  # e.g. a GAN: its players' losses rise and fall by design; no fit verdict
    spikes = [
        (i + 1, train_loss[i], min(train_loss[:i]))
        for i in range(1, len(train_loss))
        if train_loss[i] > SPIKE_FACTOR * min(train_loss[:i]) and train_loss[i] - min(train_loss[:i]) > 0.05
    ]
    if spikes:
        e, v, best = spikes[0]
        return Diagnosis("unstable", [f"train loss spiked at epoch {e}: {v:.4g} vs best earlier {best:.4g} (> {SPIKE_FACTOR}x); {len(spikes)} spike epoch(s)"])
    # 2. overfitting: train far better than validation, validation loss rising
    evidence = []
    gap = train_acc[-1] - val_acc[-1] if train_acc and val_acc else None
    rising = None
    if len(val_loss) >= 3:
        best_i = min(range(len(val_loss)), key=val_loss.__getitem__)
        if best_i < len(val_loss) - 1 and val_loss[-1] > VAL_RISE * val_loss[best_i]:
            rising = (best_i + 1, val_loss[best_i], val_loss[-1])
    if gap is not None and gap > GAP_ACCURACY:
        evidence.append(f"train accuracy {train_acc[-1]:.4f} vs validation {val_acc[-1]:.4f} (gap {gap:.3f} > {GAP_ACCURACY})")
    if val_loss and val_loss[-1] > LOSS_GAP_FACTOR * train_loss[-1] and val_loss[-1] - train_loss[-1] > 0.05:
        evidence.append(f"validation loss {val_loss[-1]:.4g} is {val_loss[-1] / max(train_loss[-1], 1e-12):.1f}x the train loss {train_loss[-1]:.4g}")
    if rising:
        evidence.append(f"validation loss rose from its minimum {rising[1]:.4g} at epoch {rising[0]} to {rising[2]:.4g}")
    if evidence:
        return Diagnosis("overfitting", evidence)
    # 3. the task's quality metric decides between underfitting and healthy
    if quality is None and (train_acc or val_acc):
        quality = ACCURACY
    shape = f"train loss {train_loss[0]:.4g} -> {train_loss[-1]:.4g} over {len(train_loss)} epochs" + (
        f", validation loss {val_loss[-1]:.4g}" if val_loss else ""
    )
    if quality is not None:
        judged = judge_quality(quality, epochs, test, majority=majority, classical=classical)
        if judged.verdict == "poor":
            return Diagnosis("underfitting", [*judged.evidence, shape])
        if judged.verdict == "good":
            return Diagnosis("healthy", [*judged.evidence, shape])
        return Diagnosis("no problem seen", [*judged.evidence, shape])
    # No quality metric: only a loss that never fell, from the first step on, says underfitting.
    first = _series(list(steps or []), "train/loss")[:1] or train_loss[:1]
    if len(train_loss) >= 2 and train_loss[-1] > 0.9 * train_loss[0] and train_loss[-1] > 0.9 * first[0]:
        return Diagnosis("underfitting", [f"train loss barely moved: {first[0]:.4g} at the start -> {train_loss[-1]:.4g}"])
    return Diagnosis("no problem seen", [shape])


def majority_rate(run: Run) -> float | None:
    """The test accuracy of always predicting the most frequent test class (from test_predictions.npz)."""
    import numpy as np

    y = (run.predictions or {}).get("y_true")
    if y is None or not np.asarray(y).size:
        return None
    y = np.asarray(y).astype(np.int64).ravel()
    return float(np.bincount(y).max() / y.size)


def best_classical(run: Run, quality: Quality) -> tuple[str, float] | None:
    """The best classical model of the run's baselines.json on the quality metric: (name, test value)."""
    from deepstrata.baselines.classical import BASELINES_FILE, read_baselines

    data = read_baselines(run.run_dir / BASELINES_FILE) or {}
    rows = [r for r in data.get("results", []) if r.get("metric") == quality.metric and _finite(r.get("value"))]
    if not rows:
        return None
    best = (max if quality.higher_is_better else min)(rows, key=lambda r: r["value"])
    return str(best["model"]), float(best["value"])


def diagnose_run(run: Run) -> Diagnosis | None:
    """`diagnose` with what the run's task says about judging it (its class's `quality`, `curves_show_fit`)."""
    try:
        task = run.task_class
    except (DeepstrataError, KeyError, TypeError):
        task = None  # an old or foreign run: judge the curves alone
    quality = getattr(task, "quality", None)
    return diagnose(
        run.scope("epoch"),
        run.scope("step"),
        quality=quality,
        curves_show_fit=getattr(task, "curves_show_fit", True),
        test=run.test_metrics,
        majority=majority_rate(run) if quality is not None and quality.majority_class else None,
        classical=best_classical(run, quality) if quality is not None and quality.classical else None,
    )


@register_report_section("diagnosis")
def diagnosis(run: Run) -> Section | None:
    """Under/overfitting, instability or healthy, with evidence from the curves and the quality metric, and the fixes."""
    result = diagnose_run(run)
    if result is None:
        return None
    evidence = "".join(f"<li>{html.escape(e)}</li>" for e in result.evidence)
    fixes = "".join(f"<li>{html.escape(f)}</li>" for f in result.fixes)
    body = (
        f"<p><strong>Diagnosis: {html.escape(result.case)}</strong></p>"
        f"<p>Evidence from the learning curves and the task's quality metric:</p><ul>{evidence}</ul>"
        f"<p>What to try:</p><ul>{fixes}</ul>"
    )
    return Section("Diagnosis", body, order=22)
