"""Calibrate: write a derived run whose model serves recalibrated probabilities.

Problem: a trained classifier's confidences are often too high (Guo et al. 2017), and a fix
fitted in a notebook never reaches the model that is evaluated, exported or served.
Idea: fit a registered recalibrator (temperature, vector, histogram, isotonic, Platt) on the
run's validation logits, wrap the model and the fitted map into one `calibrated` model
(models/calibrated.py) and write it as a derived run: `strata evaluate`, `predict`, the report
and later exports of that run all use calibrated probabilities with no further step. The
metrics say what changed on the test split: `test/ece_before` and `test/ece`, NLL, Brier and
accuracy before and after (ECE: 15 equal-width bins, as torchmetrics and Guo et al.), and
`test/ece_floor`, the ECE a perfectly calibrated model with the calibrated confidences would
show on this test set (an after-ECE at its floor is as good as this test set can tell).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepstrata.errors import UserError, did_you_mean
from deepstrata.registry import REGISTRIES, register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase
from deepstrata.tools.predictions import require_classifier, split_logits

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from deepstrata.learned.calibrator import Calibrator


def calibrators() -> dict[str, str]:
    """Method name (as `--method` takes it) -> registered learned name, for every recalibrator."""
    learned = REGISTRIES["learned"]
    out = {}
    for name in learned.names():
        method = learned.meta(name).get("calibrator")
        if method:
            out[str(method)] = name
    return out


def make_calibrator(method: str, tool: str) -> Calibrator:
    from deepstrata.registry import create

    choices = calibrators()
    if method not in choices:
        raise UserError(f"{tool}: unknown method '{method}'{did_you_mean(method, list(choices))} (choices: {', '.join(sorted(choices))})")
    return create("learned", choices[method])


def scores(logits: torch.Tensor, labels: torch.Tensor, *, n_bins: int) -> dict[str, float]:
    """Calibration measures of softmax(logits) against labels (metrics/calibration.py)."""
    from deepstrata.metrics.calibration import calibration_report

    return calibration_report(logits.double().softmax(dim=1), labels, n_bins=n_bins)


@register_tool("calibrate", kind="transformation")
def calibrate(run: Run, *, method: str = "temperature", n_bins: int = 15) -> Derived:
    """Fit a recalibrator on the validation split and write the calibrated model as a new run.

    method: temperature | vector | histogram | isotonic | platt (binary only).
    n_bins: equal-width bins of the ECE in the reported metrics.
    """
    from deepstrata.metrics.calibration import ece_floor
    from deepstrata.models.calibrated import Calibrated

    require_classifier(run, "calibrate")
    calibrator = make_calibrator(method, "calibrate")
    if run.recipe.data.val_fraction <= 0:
        raise UserError(f"calibrate: '{run.path}' has no validation split to fit on; train it with data.val_fraction > 0 (e.g. 0.1)")
    model = run.model()
    phase("calibrate: logits of the validation split")
    val_z, val_y = split_logits(run, "val", model=model)
    calibrator.fit(val_z, val_y)
    mapping = calibrator.calibration_map()
    wrapped = Calibrated(model, mapping).eval()
    phase("calibrate: scoring the test split before and after")
    test_z, test_y = split_logits(run, "test", model=model)
    after_z = split_logits(run, "test", model=wrapped)[0]
    metrics: dict[str, float] = {}
    for split, (z_before, z_after, y) in {"val": (val_z, mapping(val_z), val_y), "test": (test_z, after_z, test_y)}.items():
        before, after = scores(z_before, y, n_bins=n_bins), scores(z_after.detach(), y, n_bins=n_bins)
        for key in before:
            metrics[f"{split}/{key}_before"] = before[key]
            metrics[f"{split}/{key}"] = after[key]
    # What a perfectly calibrated model with the calibrated confidences would score on this test
    # set: the ECE ratio cannot exceed ece_before / ece_floor (metrics/calibration.py).
    metrics["test/ece_floor"] = ece_floor(after_z.detach().double().softmax(dim=1), n_bins=n_bins)
    fitted = {k: v for k, v in calibrator.fitted_attributes().items() if isinstance(v, (int, float))}
    metrics.update({f"calibration/{k.rstrip('_')}": float(v) for k, v in fitted.items()})
    spec_updates: dict[str, Any] = {
        "architecture": "calibrated",
        "kwargs": {
            "base": {"architecture": run.architecture, "kwargs": dict(run.spec.get("kwargs", {}))},
            "num_classes": int(val_z.shape[1]),
            "map": mapping.kind,
            "knots": int(mapping.x.shape[1]) if mapping.kind == "table" else 0,
            "interpolate": bool(mapping.interpolate),
        },
        "calibration": {"method": method, "learned": calibrator.registered_as(), "params": calibrator.get_params(), "fitted": fitted},
    }
    return Derived(model=wrapped, spec_updates=spec_updates, metrics=metrics)
