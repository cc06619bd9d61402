"""The diagnosis section: each case from synthetic curves, and from a real recipe built to produce it."""

from __future__ import annotations

import math

import pytest

from deepstrata.report.sections.diagnosis import FIXES, diagnose


def epochs(train_loss, val_loss, train_acc=None, val_acc=None):
    out = []
    for i, (tl, vl) in enumerate(zip(train_loss, val_loss)):
        r = {"scope": "epoch", "epoch": i + 1, "train/loss": tl, "val/loss": vl}
        if train_acc:
            r["train/accuracy"], r["val/accuracy"] = train_acc[i], val_acc[i]
        out.append(r)
    return out


def test_synthetic_cases():
    healthy = epochs([1.0, 0.4, 0.2, 0.15], [1.0, 0.45, 0.25, 0.22], [0.7, 0.9, 0.96, 0.97], [0.7, 0.88, 0.94, 0.95])
    assert diagnose(healthy).case == "healthy"
    under = epochs([2.3, 2.2, 2.1], [2.3, 2.2, 2.1], [0.15, 0.2, 0.3], [0.14, 0.2, 0.28])
    assert diagnose(under).case == "underfitting"
    over = epochs([1.0, 0.3, 0.05, 0.01, 0.002], [1.0, 0.5, 0.45, 0.6, 0.8], [0.7, 0.9, 0.99, 1.0, 1.0], [0.7, 0.82, 0.84, 0.83, 0.82])
    d = diagnose(over)
    assert d.case == "overfitting" and any("rose" in e for e in d.evidence) and any("gap" in e for e in d.evidence)
    memorised = epochs([1.0, 0.1, 0.01], [1.0, 0.3, 0.25], [0.7, 0.98, 1.0], [0.7, 0.93, 0.94])
    assert diagnose(memorised).case == "overfitting"  # train loss ~0, validation loss 25x higher
    spiky = epochs([1.0, 0.5, 0.3, 2.0, 0.4], [1.0, 0.5, 0.3, 2.0, 0.4])
    assert diagnose(spiky).case == "unstable"
    nonfinite = epochs([1.0, 0.5], [1.0, 0.5]) + [{"scope": "epoch", "epoch": 3, "train/loss": None, "val/loss": None}]
    d = diagnose(nonfinite)
    assert d.case == "unstable" and "non-finite" in d.evidence[0]
    assert diagnose(epochs([1.0], [1.0]), [{"scope": "step", "step": 7, "train/loss": math.inf}]).case == "unstable"
    assert diagnose([]) is None


def test_fixes_follow_the_notes():
    assert any("learning rate" in f for f in FIXES["unstable"]) and any("clip" in f for f in FIXES["unstable"])
    assert {"dropout", "augment", "early"} <= {w for f in FIXES["overfitting"] for w in ("dropout", "augment", "early") if w in f}
    assert any("capacity" in f for f in FIXES["underfitting"]) and any("epochs" in f for f in FIXES["underfitting"])


def _recipe(tmp_path):
    return {
        "name": "diag", "seed": 0, "output_dir": str(tmp_path / "runs"), "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "in_features": 64, "hidden": [64]}, "optimizer": {"name": "adamw", "lr": 0.01},
        "trainer": {"max_epochs": 3, "num_threads": 1, "progress": "off"}, "metrics": ["accuracy"],
    }


CASES = {
    "healthy": [],
    # a learning rate far too small for two epochs: nothing is learnt
    "underfitting": ["optimizer.name=sgd", "optimizer.lr=0.0003", "trainer.max_epochs=2"],
    # 10% of digits for training, a wide MLP, no weight decay, many epochs
    "overfitting": ["data.val_fraction=0.7", "model.hidden=[256,256]", "optimizer.weight_decay=0.0", "optimizer.lr=0.003",
                    "trainer.max_epochs=12", "data.batch_size=32"],
    # SGD with a large step and momentum 0.99: the loss jumps back up between epochs
    "unstable": ["optimizer.name=sgd", "optimizer.lr=0.5", "optimizer.momentum=0.99", "trainer.max_epochs=6", "trainer.nonfinite=skip"],
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(CASES))
def test_recipe_built_for_each_case_is_diagnosed_so_and_reported(case, tmp_path):
    from deepstrata import api
    from deepstrata.run.run import Run

    result = api.train(_recipe(tmp_path), CASES[case])
    run = Run.open(result.run_dir)
    d = diagnose(run.scope("epoch"), run.scope("step"))
    assert d.case == case, d.evidence
    page = (result.run_dir / "report.html").read_text()
    assert f"Diagnosis: {case}" in page and FIXES[case][0] in page
