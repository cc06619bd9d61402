"""Diagnosis from the learning curves: underfitting, overfitting, unstable or healthy.

Problem: a reader of learning curves must know what shape means what and which knob to turn;
a beginner sees two lines. Idea: read the per-epoch train/validation loss and accuracy from
metrics.jsonl, apply the textbook tests in order of urgency (non-finite values or loss spikes ->
unstable; train far better than validation with validation loss rising -> overfitting; both
poor -> underfitting; otherwise healthy), and print the evidence with the notes' fixes for that
case (Goodfellow, Bengio & Courville 2016, ch. 5.2 and 11; Smith 2018, "A disciplined approach
to neural network hyper-parameters").
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section
from deepstrata.run.run import Run

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
    "healthy": ["nothing urgent: train and validation agree and are good; compare with a classical baseline"],
}

# Thresholds, named so the report can quote them.
SPIKE_FACTOR = 1.5  # an epoch's train loss above 1.5x the best earlier one is a spike
GAP_ACCURACY = 0.08  # train accuracy this far above validation accuracy is a generalisation gap
VAL_RISE = 1.10  # final validation loss 10% above its minimum, reached earlier, is "rising"
POOR_ACCURACY = 0.80  # train accuracy below this is "poor"
LOSS_GAP_FACTOR = 3.0  # validation loss this many times the train loss (and 0.05 above it) is a gap


@dataclass
class Diagnosis:
    case: str  # "unstable" | "overfitting" | "underfitting" | "healthy"
    evidence: list[str] = field(default_factory=list)

    @property
    def fixes(self) -> list[str]:
        return FIXES[self.case]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _series(epochs: list[dict[str, Any]], key: str) -> list[Any]:
    return [r[key] for r in epochs if key in r and r[key] is not None]


def diagnose(epochs: list[dict[str, Any]], steps: list[dict[str, Any]] | None = None) -> Diagnosis | None:
    """Classify the curves of `scope: epoch` records (and `scope: step` records, for non-finite losses)."""
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
    # 3. underfitting: train and validation both poor
    if train_acc and train_acc[-1] < POOR_ACCURACY:
        ev = [f"train accuracy only {train_acc[-1]:.4f} (< {POOR_ACCURACY})"]
        if val_acc:
            ev.append(f"validation accuracy {val_acc[-1]:.4f} is just as poor")
        if len(train_loss) >= 2:
            ev.append(f"train loss {train_loss[0]:.4g} -> {train_loss[-1]:.4g} over {len(train_loss)} epochs")
        return Diagnosis("underfitting", ev)
    if not train_acc and len(train_loss) >= 2 and train_loss[-1] > 0.9 * train_loss[0]:
        return Diagnosis("underfitting", [f"train loss barely moved: {train_loss[0]:.4g} -> {train_loss[-1]:.4g}"])
    ev = [f"final train loss {train_loss[-1]:.4g}" + (f", validation loss {val_loss[-1]:.4g}" if val_loss else "")]
    if train_acc and val_acc:
        ev.append(f"train accuracy {train_acc[-1]:.4f}, validation accuracy {val_acc[-1]:.4f} (gap {train_acc[-1] - val_acc[-1]:.3f})")
    return Diagnosis("healthy", ev)


@register_report_section("diagnosis")
def diagnosis(run: Run) -> Section | None:
    """Under/overfitting, instability or healthy, with evidence from the curves and the fixes."""
    result = diagnose(run.scope("epoch"), run.scope("step"))
    if result is None:
        return None
    evidence = "".join(f"<li>{html.escape(e)}</li>" for e in result.evidence)
    fixes = "".join(f"<li>{html.escape(f)}</li>" for f in result.fixes)
    body = (
        f"<p><strong>Diagnosis: {html.escape(result.case)}</strong></p>"
        f"<p>Evidence from the learning curves:</p><ul>{evidence}</ul>"
        f"<p>What to try:</p><ul>{fixes}</ul>"
    )
    return Section("Diagnosis", body, order=22)
