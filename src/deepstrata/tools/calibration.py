"""Calibration: how honest a classifier's confidences are, and what each recalibrator would do.

Problem: before choosing a recalibrator a user needs to see how miscalibrated the model is, and
how the methods compare on data none of them was fitted on.
Idea: score the run's test predictions (ECE with equal-width and equal-mass bins, MCE, classwise
ECE, NLL, Brier, accuracy), then fit every registered recalibrator that applies (Platt scaling
only for two classes) on the validation split and score it on the test split; one table side by
side, and reliability diagrams (with each bin's count) before and after the best one by
validation NLL. The choice is made on validation, never on test. `strata calibrate --method ...`
then writes the chosen one as a derived run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.calibrate import calibrators, make_calibrator, scores
from deepstrata.tools.predictions import require_classifier, split_logits

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_tool("calibration", kind="analysis", report="trust")
def calibration(run: Run, *, n_bins: int = 15) -> Analysis:
    """ECE, MCE, NLL, Brier of the test split, uncalibrated and after each recalibrator fitted on validation.

    n_bins: bins of the ECE, MCE and reliability diagrams.
    """
    from deepstrata.metrics.calibration import reliability_bins, reliability_figure

    require_classifier(run, "calibration")
    if run.recipe.data.val_fraction <= 0:
        raise UserError(f"calibration: '{run.path}' has no validation split to fit recalibrators on; train it with data.val_fraction > 0")
    model = run.model()
    phase("calibration: logits of the validation and test splits")
    val_z, val_y = split_logits(run, "val", model=model)
    test_z, test_y = split_logits(run, "test", model=model)
    outputs = {"uncalibrated": (val_z, test_z)}
    skipped, fitted = [], []
    for method in sorted(calibrators(), key=lambda m: (m != "temperature", m)):
        calibrator = make_calibrator(method, "calibration")
        try:
            calibrator.fit(val_z, val_y)
        except UserError as err:  # Platt on K > 2 classes: it does not apply, say so in the summary
            skipped.append(f"{method} ({err})")
            continue
        phase(f"calibration: {method}")
        mapping = calibrator.calibration_map()
        fitted.append(calibrator)
        outputs[method] = (mapping(val_z).detach(), mapping(test_z).detach())
    rows, metrics = [], {}
    for method, (vz, tz) in outputs.items():
        test, val = scores(tz, test_y, n_bins=n_bins), scores(vz, val_y, n_bins=n_bins)
        cv = _cross_validated_nll(method, val_z, val_y) if method != "uncalibrated" else val["nll"]
        rows.append({"method": method, **{k: round(v, 5) for k, v in test.items()}, "val_nll_2fold": round(cv, 5)})
        metrics.update({f"test/{method}/{k}": v for k, v in test.items()})
        metrics.update({f"val/{method}/nll_2fold": cv, f"val/{method}/nll": val["nll"], f"val/{method}/ece": val["ece"]})
    best = min((m for m in outputs if m != "uncalibrated"), key=lambda m: metrics[f"val/{m}/nll_2fold"])
    figures = {}
    for method in ("uncalibrated", best):
        probs = outputs[method][1].double().softmax(1)
        conf, pred = probs.max(1)
        bins = reliability_bins(conf, (pred == test_y).double(), n_bins=n_bins)
        figures[f"reliability_{method}"] = reliability_figure(bins, title=f"{run.name}: {method} (test ECE {metrics[f'test/{method}/ece']:.4f})")
    before, after = metrics["test/uncalibrated/ece"], metrics[f"test/{best}/ece"]
    summary = (
        f"Test ECE ({n_bins} equal-width bins) {before:.4f} uncalibrated; the method with the lowest 2-fold validation NLL is "
        f"{best}, with test ECE {after:.4f} ({before / max(after, 1e-12):.1f}x lower) and accuracy "
        f"{metrics[f'test/{best}/accuracy']:.4f} (was {metrics['test/uncalibrated/accuracy']:.4f})."
    )
    if skipped:
        summary += " Not applicable: " + "; ".join(skipped) + "."
    # every fitted recalibrator is saved with the result: tools.base.saved_learned(run, "calibration", "<registered name>")
    return Analysis(metrics=metrics, tables={"calibration": rows}, figures=figures, summary=summary, learned=fitted)


def _cross_validated_nll(method: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean NLL of `method` fitted on one half of the validation split and scored on the other, both ways.

    The halves come from a fixed permutation (seed 0), so the choice is reproducible.
    """
    import torch

    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    total = 0.0
    for fit, score in (halves, halves[::-1]):
        mapping = make_calibrator(method, "calibration").fit(logits[fit], labels[fit]).calibration_map()
        total += scores(mapping(logits[score]).detach(), labels[score], n_bins=15)["nll"]
    return total / 2
