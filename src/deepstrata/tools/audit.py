"""Audit: how a binary classifier's decisions differ between groups, with confidence intervals.

Problem: accuracy on the whole test set says nothing about whether the model selects women
as often as men, or makes its mistakes mostly on one race; and a gap measured on a few
hundred rows of a small group may be noise.
Idea: take the run's decisions on a split (argmax of its logits, or positive-class probability
> `threshold` when one is given), the true labels, and each row's group from the data's
per-row attributes (`DataBundle.attributes[split][name]`, in split order, so no group has to be
a model input); then, per group attribute: a table of count, base rate, selection rate, TPR,
FPR, precision, accuracy and ECE per group, and the four gaps of fairness/metrics.py with
percentile bootstrap intervals (`bootstrap` resamples, seed 0), named
`<split>/<gap>/<attribute>` with `/ci_low`, `/ci_high`. Every number is fairlearn's definition
(tests/fairness proves them equal).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepstrata.errors import UserError, did_you_mean
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import require_classifier, split_logits


def split_groups(run: Run, split: str, names: list[str], *, who: str) -> dict[str, np.ndarray]:
    """Each named attribute's values (len(split),) on `split`; a UserError naming the attributes the data has."""
    attributes = run.experiment().data.attributes
    if not attributes:
        raise UserError(f"{who}: the data of '{run.path}' ({run.recipe.data.name}) records no per-row group attributes; audit a run on data that does (adult: sex, race; german_credit: sex, age_group)")
    if split not in attributes:
        raise UserError(f"{who}: unknown split '{split}' (choices: {', '.join(attributes)})")
    have = attributes[split]
    out = {}
    for name in names:
        if name not in have:
            raise UserError(f"{who}: unknown group '{name}'{did_you_mean(name, list(have))}; the data of '{run.path}' has: {', '.join(sorted(have))}")
        out[name] = np.asarray(have[name]).astype(str)
    return out


def decisions(logits: Any, *, threshold: float, who: str, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(decisions (N,) in {0, 1}, probabilities (N, 2)) of a binary classifier's logits."""
    if logits.shape[1] != 2:
        raise UserError(f"{who}: the fairness measures need a binary classifier (positive class 1); '{run.path}' predicts {logits.shape[1]} classes")
    probs = logits.double().softmax(dim=1).numpy()
    pred = logits.argmax(dim=1).numpy() if threshold < 0 else (probs[:, 1] > threshold).astype(np.int64)
    return pred.astype(np.int64), probs


@register_tool("audit", kind="analysis", report="fairness")
def audit(run: Run, *, group: list[str] = ["sex"], split: str = "test", bootstrap: int = 1000, threshold: float = -1.0, n_bins: int = 15) -> Analysis:  # noqa: B006 - the tool contract needs a default
    """Per-group selection rate, TPR, FPR, precision and ECE, and demographic parity / equalised odds / equal opportunity gaps with bootstrap CIs.

    group: the data's group attributes to audit (e.g. sex,race); split: train | val | test;
    bootstrap: resamples of the 95% percentile intervals (0: none); threshold: decide
    positive when P(class 1) > threshold (default -1: the model's argmax); n_bins: ECE bins.
    """
    from deepstrata.fairness.metrics import GAPS, bootstrap_gaps, gaps, group_table

    require_classifier(run, "audit")
    if not group:
        raise UserError("audit: name at least one group attribute, e.g. --group sex,race")
    if not (threshold < 0 or 0 <= threshold <= 1):
        raise UserError(f"audit: threshold must be a probability in [0, 1] (or -1 for the argmax), got {threshold}")
    groups = split_groups(run, split, list(group), who="audit")
    phase(f"audit: logits of the {split} split")
    logits, labels = split_logits(run, split)
    pred, probs = decisions(logits, threshold=threshold, who="audit", run=run)
    y = labels.numpy()
    for name, values in groups.items():
        if len(values) != len(y):
            raise UserError(f"audit: attribute '{name}' has {len(values)} values for the {len(y)} rows of the {split} split; rebuild the run's data")
    metrics: dict[str, float] = {f"{split}/accuracy": float((pred == y).mean()), f"{split}/selection_rate": float(pred.mean())}
    tables: dict[str, list[dict[str, Any]]] = {}
    gap_rows = []
    for name, values in groups.items():
        phase(f"audit: {name} ({bootstrap} bootstrap resamples)")
        rows = group_table(y, pred, values, probs=probs, n_bins=n_bins)
        tables[f"groups_{name}"] = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
        for r in rows:
            for key in ("count", "selection_rate", "tpr", "fpr", "precision", "accuracy", "ece"):
                metrics[f"{split}/{key}/{name}={r['group']}"] = float(r[key])
        point = gaps(y, pred, values)
        ci = bootstrap_gaps(y, pred, values, draws=bootstrap, seed=0) if bootstrap > 0 else {}
        for gap in GAPS:
            metrics[f"{split}/{gap}/{name}"] = point[gap]
            row: dict[str, Any] = {"attribute": name, "measure": gap, "value": round(point[gap], 5)}
            if gap in ci:
                metrics[f"{split}/{gap}/{name}/ci_low"], metrics[f"{split}/{gap}/{name}/ci_high"] = ci[gap]
                row["ci_low"], row["ci_high"] = round(ci[gap][0], 5), round(ci[gap][1], 5)
            gap_rows.append(row)
    tables = {"gaps": gap_rows, **tables}
    first = list(groups)[0]
    dp = metrics[f"{split}/demographic_parity_difference/{first}"]
    eo = metrics[f"{split}/equalized_odds_difference/{first}"]
    ci_text = (
        f" (95% CI {metrics[f'{split}/demographic_parity_difference/{first}/ci_low']:.3f}-{metrics[f'{split}/demographic_parity_difference/{first}/ci_high']:.3f})"
        if bootstrap > 0
        else ""
    )
    summary = (
        f"On the {split} split ({len(y)} rows, accuracy {metrics[f'{split}/accuracy']:.4f}), the selection rate differs by "
        f"{dp:.3f} between the groups of '{first}'{ci_text}, and the worse of the TPR and FPR gaps (equalised odds difference) is {eo:.3f}."
    )
    return Analysis(metrics=metrics, tables=tables, summary=summary)
