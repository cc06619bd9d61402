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
    from deepstrata.report.sections.diagnosis import diagnose_run
    from deepstrata.run.run import Run

    result = api.train(_recipe(tmp_path), CASES[case])
    run = Run.open(result.run_dir)
    d = diagnose_run(run)  # the task's quality metric against the majority class of its test labels
    assert d.case == case, d.evidence
    page = (result.run_dir / "report.html").read_text()
    assert f"Diagnosis: {case}" in page and FIXES[case][0] in page


# ---------------------------------------------------------------- issue #14: each task judged by its own quality metric
def _run(tmp_path, task, records, *, y_true=None, baselines=None):
    """A Run of `task` from synthetic records (and the test labels / baselines.json the section reads)."""
    import json

    import numpy as np

    from deepstrata.run.run import Run

    tmp_path.mkdir(parents=True, exist_ok=True)
    if y_true is not None:
        np.savez(tmp_path / "test_predictions.npz", y_true=np.asarray(y_true, dtype=np.int64))
    if baselines is not None:
        results = [{"model": name, "metric": metric, "value": value, "fit_time_s": 0.1} for name, metric, value in baselines]
        (tmp_path / "baselines.json").write_text(json.dumps({"split": {"test_size": 360}, "results": results}))
    return Run(tmp_path, config={"name": "t", "task": task}, info={}, records=records)


def _falling(n=4, start=1.2, end=0.4, **per_epoch):
    """Epoch records with a smoothly falling train/val loss and the given per-epoch metric lists."""
    out = []
    for i in range(n):
        loss = start + (end - start) * i / (n - 1)
        r = {"scope": "epoch", "epoch": i + 1, "step": 10 * (i + 1), "train/loss": loss, "val/loss": loss * 1.05}
        r.update({k: v[i] for k, v in per_epoch.items()})
        out.append(r)
    return out


def test_seq2seq_at_zero_exact_match_is_never_healthy(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    records = _falling(**{"val/exact_match": [0.0] * 4, "val/token_accuracy": [0.3, 0.45, 0.55, 0.6]})
    records.append({"scope": "test", "test/loss": 0.45, "test/exact_match": 0.0, "test/token_accuracy": 0.6})
    d = diagnose_run(_run(tmp_path, "seq2seq", records))
    assert d.case == "underfitting", d.evidence  # it used to say "healthy": the loss fell smoothly
    assert any("exact_match is 0" in e for e in d.evidence)


def test_char_lm_worse_than_its_bigram_is_not_healthy(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    bpc = [3.6, 3.4, 3.3, 3.25]
    records = _falling(**{"train/bits_per_char": bpc, "val/bits_per_char": bpc, "val/bigram_bits_per_char": [3.0] * 4})
    records.append({"scope": "test", "test/loss": 2.2, "test/bits_per_char": 3.25, "test/bigram_bits_per_char": 3.0})
    d = diagnose_run(_run(tmp_path, "language_modeling", records))
    assert d.case == "underfitting", d.evidence
    assert any("no better than the bigram_bits_per_char baseline's 3" in e for e in d.evidence)
    # ...and one that beats its bigram is healthy, with the comparison as evidence
    records[-1] = {"scope": "test", "test/loss": 1.2, "test/bits_per_char": 2.1, "test/bigram_bits_per_char": 3.0}
    d = diagnose_run(_run(tmp_path, "language_modeling", records))
    assert d.case == "healthy" and any("beats the bigram" in e for e in d.evidence)


def test_a_985_percent_classifier_with_a_slowly_falling_loss_is_not_underfitting(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    # MixUp-style training: train accuracy (against the dominant class) and loss stay modest, the model is excellent
    records = _falling(start=1.05, end=0.98, **{"train/accuracy": [0.74, 0.75, 0.75, 0.76], "val/accuracy": [0.97, 0.98, 0.985, 0.985]})
    for r in records:
        r["val/loss"] = 0.06
    records.append({"scope": "test", "test/loss": 0.06, "test/accuracy": 0.985})
    assert diagnose(records[:-1]).case == "healthy"  # held-out accuracy decides, not the train accuracy under augmentation
    d = diagnose_run(_run(tmp_path, "classification", records, y_true=[i % 10 for i in range(360)]))
    assert d.case == "healthy", d.evidence  # it used to say "underfitting"
    assert any("majority class" in e for e in d.evidence)


def test_a_classifier_near_the_majority_rate_or_below_the_classical_baseline_is_underfitting(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    records = _falling(**{"train/accuracy": [0.85, 0.88, 0.9, 0.91], "val/accuracy": [0.85, 0.88, 0.9, 0.91]})
    records.append({"scope": "test", "test/loss": 0.4, "test/accuracy": 0.91})
    imbalanced = [0] * 324 + [1] * 36  # 90% one class: 0.91 accuracy is hardly better than always saying 0
    d = diagnose_run(_run(tmp_path / "a", "classification", records, y_true=imbalanced))
    assert d.case == "underfitting" and any("close to it" in e for e in d.evidence), d.evidence
    balanced = [i % 10 for i in range(360)]
    d = diagnose_run(_run(tmp_path / "b", "classification", records, y_true=balanced, baselines=[("svm_rbf", "accuracy", 0.98)]))
    assert d.case == "underfitting" and any("clearly below" in e for e in d.evidence), d.evidence
    d = diagnose_run(_run(tmp_path / "c", "classification", records, y_true=balanced, baselines=[("svm_rbf", "accuracy", 0.92)]))
    assert d.case == "healthy", d.evidence  # one point below the classical model is a tie, not underfitting


def test_forecaster_is_judged_against_persistence_and_seasonal_naive(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    records = _falling(**{"val/mae": [2.0, 1.8, 1.7, 1.6], "val/persistence_mae": [1.5] * 4, "val/seasonal_naive_mae": [1.9] * 4})
    records.append({"scope": "test", "test/mae": 1.6, "test/persistence_mae": 1.5, "test/seasonal_naive_mae": 1.9})
    d = diagnose_run(_run(tmp_path, "forecasting", records))
    assert d.case == "underfitting" and any("persistence_mae" in e for e in d.evidence), d.evidence
    records[-1] = {"scope": "test", "test/mae": 1.1, "test/persistence_mae": 1.5, "test/seasonal_naive_mae": 1.9}
    assert diagnose_run(_run(tmp_path, "forecasting", records)).case == "healthy"


def test_a_gan_gets_no_fit_advice_only_instability_when_its_losses_are_not_finite(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run, diagnosis

    # the two players' losses hover where the game keeps them: no "underfitting", no "give the model more capacity"
    records = [
        {"scope": "epoch", "epoch": i + 1, "train/loss": 1.40 - 0.01 * i, "train/d_loss": 0.69 + 0.02 * (i % 2), "train/g_loss": 0.7}
        for i in range(5)
    ]
    run = _run(tmp_path, "generative", records)
    assert diagnose_run(run) is None and diagnosis(run) is None
    records.append({"scope": "epoch", "epoch": 6, "train/loss": None, "train/d_loss": None, "train/g_loss": None})
    d = diagnose_run(_run(tmp_path, "generative", records))
    assert d.case == "unstable" and "non-finite" in d.evidence[0]


def test_no_baseline_no_verdict_of_health(tmp_path):
    from deepstrata.report.sections.diagnosis import diagnose_run

    # regression without baselines.json: the curves are fine, the quality cannot be judged
    records = _falling(**{"val/rmse": [1.0, 0.8, 0.7, 0.65]}) + [{"scope": "test", "test/rmse": 0.65}]
    d = diagnose_run(_run(tmp_path, "regression", records))
    assert d.case == "no problem seen" and "strata baseline" in d.fixes[0]
    d = diagnose_run(_run(tmp_path / "b", "regression", records, baselines=[("random_forest", "rmse", 0.4)]))
    assert d.case == "underfitting" and any("random_forest" in e for e in d.evidence)
