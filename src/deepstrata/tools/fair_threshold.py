"""Fair threshold: a derived run that decides with one threshold per group (Hardt, Price & Srebro 2016).

Problem: a trained binary classifier's selection rates (or error rates) differ by group, and
retraining it under a constraint is costly; often only the decision rule may change.
Idea: fit a threshold per group on the VALIDATION split (fairness/thresholds.py: equal
selection rates for demographic parity, equal TPRs for equal opportunity / equalised odds,
the common rate chosen for validation accuracy), and wrap the model in `group_thresholded`
(models/group_thresholded.py), which reads the group from the input's categorical column and
shifts the positive logit by the group's threshold. The derived run predicts on its own:
`strata evaluate`, `predict`, `audit` and a server apply the thresholds with no further step.
The metrics say what changed: accuracy and the gaps before and after, on validation (where the
thresholds were fitted) and test (reported, never used for the choice).

Limits: the group must be an input feature (refused otherwise: the wrapper could not know a
row's group); thresholds are deterministic, not Hardt et al.'s randomised mix; the shifted
logits are decision scores, their softmax no longer a calibrated probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase
from deepstrata.tools.predictions import input_tensor, require_classifier


@register_tool("fair_threshold", kind="transformation")
def fair_threshold(run: Run, *, group: str = "sex", constraint: str = "demographic_parity", tolerance: float = 0.02, strength: float = 1.0) -> Derived:
    """Per-group decision thresholds fitted on validation for demographic parity or equalised odds; writes the thresholded model as a new run.

    group: the categorical input column holding the group (it must be a model input);
    constraint: demographic_parity | equal_opportunity | equalized_odds;
    tolerance: the validation gap allowed when choosing the common TPR (equal opportunity / equalised odds);
    strength: 0 keeps the model's own threshold, 1 applies the fair ones, between moves each threshold part way.
    """
    from deepstrata.fairness.groups import group_column
    from deepstrata.fairness.metrics import gaps
    from deepstrata.fairness.thresholds import fit_group_thresholds
    from deepstrata.models.group_thresholded import GroupThresholded

    require_classifier(run, "fair_threshold")
    if run.recipe.data.val_fraction <= 0:
        raise UserError(f"fair_threshold: '{run.path}' has no validation split to fit thresholds on; train it with data.val_fraction > 0")
    column = group_column(run.experiment().data.input_spec, group, who="fair_threshold")
    model = run.model().eval()
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for split in ("val", "test"):
        phase(f"fair_threshold: logits of the {split} split")
        x, y = input_tensor(run, split, tool="fair_threshold")
        with torch.no_grad():
            z = model(x).float()
        if z.shape[1] != 2:
            raise UserError(f"fair_threshold: needs a binary classifier; '{run.path}' predicts {z.shape[1]} classes")
        outputs[split] = (x, y, z)
    vx, vy, vz = outputs["val"]
    fitted = fit_group_thresholds(
        (vz[:, 1] - vz[:, 0]).numpy(), vy.numpy(), column.codes(vx).numpy(), num_groups=len(column.levels), constraint=constraint, tolerance=tolerance, strength=strength
    )
    wrapped = GroupThresholded(model, column=column.index, num_groups=len(column.levels)).eval()
    wrapped.thresholds.copy_(torch.as_tensor(fitted.thresholds, dtype=torch.float32))
    metrics: dict[str, float] = {}
    for split, (x, y, z) in outputs.items():
        codes = column.codes(x).numpy()
        with torch.no_grad():
            after = wrapped(x).argmax(dim=1).numpy()
        before = z.argmax(dim=1).numpy()
        labels = y.numpy()
        for suffix, pred in (("_before", before), ("", after)):
            metrics[f"{split}/accuracy{suffix}"] = float((pred == labels).mean())
            for gap, value in gaps(labels, pred, np.asarray(column.levels)[codes]).items():
                metrics[f"{split}/{gap}/{group}{suffix}"] = value
    for level, tau in zip(column.levels, fitted.thresholds):
        metrics[f"threshold/{group}={level}"] = float(tau)
    metrics["threshold/target"] = fitted.target
    spec_updates: dict[str, Any] = {
        "architecture": "group_thresholded",
        "kwargs": {"base": {"architecture": run.architecture, "kwargs": dict(run.spec.get("kwargs", {}))}, "column": column.index, "num_groups": len(column.levels)},
        "fair_threshold": {
            "group": group,
            "levels": list(column.levels),
            "constraint": constraint,
            "tolerance": tolerance,
            "strength": strength,
            "thresholds": [float(t) for t in fitted.thresholds],
            "fitted_on": "val",
        },
    }
    return Derived(model=wrapped, spec_updates=spec_updates, metrics=metrics)
