"""`strata fair-threshold`: a derived run that applies per-group thresholds fitted on validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deepstrata import api
from deepstrata.errors import UserError
from deepstrata.fairness.thresholds import fit_group_thresholds, quantile_threshold
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool
from deepstrata.tools.predictions import input_tensor, split_logits
from tests.fairness import toy_census

pytestmark = [pytest.mark.xdist_group("fairness"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with toy_census.registered():
        yield api.train(toy_census.recipe(tmp_path_factory.mktemp("fair_threshold") / "runs")).run_dir


def test_the_derived_run_decides_as_thresholding_by_hand_and_the_gap_falls_on_validation(trained: Path) -> None:
    result = apply_tool("fair_threshold", trained, group="sex", constraint="demographic_parity")
    m = result.metrics
    derived = Run.open(result.run_dir)
    assert derived.architecture == "group_thresholded" and derived.parent is not None
    # by hand: the parent's margins on the test split against the threshold of each row's group
    parent = Run.open(trained)
    x, y = input_tensor(parent, "test", tool="test")
    z, _ = split_logits(parent, "test")
    taus = np.array([m["threshold/sex=Female"], m["threshold/sex=Male"]])
    by_hand = ((z[:, 1] - z[:, 0]).numpy() > taus[x[:, 2].long().numpy()]).astype(np.int64)
    derived_z, labels = split_logits(derived, "test")  # the derived run predicts on its own: the group is read from its input
    np.testing.assert_array_equal(derived_z.argmax(1).numpy(), by_hand)
    assert derived.evaluate("test")["test/accuracy"] == pytest.approx(float((by_hand == labels.numpy()).mean()), abs=1e-6)
    # the gap falls where the thresholds were fitted, at a bounded cost
    assert m["val/demographic_parity_difference/sex"] < m["val/demographic_parity_difference/sex_before"] / 3
    assert m["val/demographic_parity_difference/sex"] < 0.03
    assert m["test/demographic_parity_difference/sex"] < m["test/demographic_parity_difference/sex_before"]
    assert m["val/accuracy"] > m["val/accuracy_before"] - 0.1
    # the audit of the derived run sees the same decisions
    audited = apply_tool("audit", result.run_dir, group=["sex"], bootstrap=0).metrics
    assert audited["test/demographic_parity_difference/sex"] == pytest.approx(m["test/demographic_parity_difference/sex"], abs=1e-12)


def test_strength_zero_keeps_the_models_decisions_and_equalized_odds_matches_tprs(trained: Path) -> None:
    kept = apply_tool("fair_threshold", trained, group="sex", strength=0.0).metrics
    assert kept["test/accuracy"] == kept["test/accuracy_before"]
    assert kept["test/demographic_parity_difference/sex"] == kept["test/demographic_parity_difference/sex_before"]
    eo = apply_tool("fair_threshold", trained, group="sex", constraint="equalized_odds", tolerance=0.1).metrics
    assert eo["val/equal_opportunity_difference/sex"] < eo["val/equal_opportunity_difference/sex_before"]
    assert eo["val/equalized_odds_difference/sex"] <= 0.1 + 1e-12


def test_quantile_thresholds_select_the_asked_share() -> None:
    s = np.arange(10, dtype=float)
    assert (s > quantile_threshold(s, 0.3)).sum() == 3
    assert (s > quantile_threshold(s, 0.0)).sum() == 0 and (s > quantile_threshold(s, 1.0)).sum() == 10
    rng = np.random.default_rng(0)
    margin, codes = rng.normal(size=400) + np.repeat([0.0, 1.5], 200), np.repeat([0, 1], 200)
    y = (rng.random(400) < 1 / (1 + np.exp(-margin))).astype(int)
    fitted = fit_group_thresholds(margin, y, codes, num_groups=2)
    pred = fitted.decide(margin, codes)
    assert pred[codes == 0].mean() == pytest.approx(pred[codes == 1].mean(), abs=0.006)


def test_a_group_that_is_not_an_input_and_bad_arguments_are_refused(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown constraint 'parity'"):
        apply_tool("fair_threshold", trained, constraint="parity")
    with pytest.raises(UserError, match="'gender' is not an input feature"):
        apply_tool("fair_threshold", trained, group="gender")
    from deepstrata.registry import DATASETS

    monkeypatch.setitem(DATASETS._items, "_fair_toy_unaware", lambda: toy_census.toy_census(drop=["sex"]))
    unaware = api.train({**toy_census.recipe(tmp_path / "runs"), "data": {"name": "_fair_toy_unaware", "batch_size": 64, "val_fraction": 0.2, "test_fraction": 0.25}, "trainer": {"max_epochs": 1, "progress": "off"}}).run_dir
    with pytest.raises(UserError, match="the group 'sex' is not an input feature of this model"):
        apply_tool("fair_threshold", unaware, group="sex")


def test_the_reports_fairness_section_shows_the_thresholds_and_the_audit(trained: Path) -> None:
    from deepstrata.report import build_report

    derived = apply_tool("fair_threshold", trained, group="sex").run_dir
    apply_tool("audit", derived, group=["sex"], bootstrap=20)
    page = Path(build_report(Run.open(derived))).read_text()
    assert "Fairness: decisions by group" in page and "per-group thresholds for sex (demographic_parity, fitted on the validation split)" in page
    assert "test DP difference" in page and "demographic_parity_difference" in page  # the audit's gap table
