"""`strata audit`: per-group rates and gaps of a run's test decisions, equal to fairlearn's, with bootstrap intervals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference, selection_rate, true_positive_rate

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool
from deepstrata.tools.predictions import split_logits
from tests.fairness import toy_census

pytestmark = [pytest.mark.xdist_group("fairness"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with toy_census.registered():
        yield api.train(toy_census.recipe(tmp_path_factory.mktemp("audit") / "runs")).run_dir


def test_audit_numbers_equal_fairlearn_on_the_runs_test_decisions(trained: Path) -> None:
    result = apply_tool("audit", trained, group=["sex", "race"], bootstrap=200)
    m = result.metrics
    run = Run.open(trained)
    logits, labels = split_logits(run, "test")
    y, yhat = labels.numpy(), logits.argmax(1).numpy()
    for name in ("sex", "race"):
        g = run.experiment().data.attributes["test"][name]
        assert m[f"test/demographic_parity_difference/{name}"] == pytest.approx(demographic_parity_difference(y, yhat, sensitive_features=g), abs=1e-12)
        assert m[f"test/equalized_odds_difference/{name}"] == pytest.approx(equalized_odds_difference(y, yhat, sensitive_features=g), abs=1e-12)
        frame = MetricFrame(metrics={"sr": selection_rate, "tpr": true_positive_rate}, y_true=y, y_pred=yhat, sensitive_features=g)
        for level, row in frame.by_group.iterrows():
            assert m[f"test/selection_rate/{name}={level}"] == pytest.approx(row["sr"], abs=1e-12)
            assert m[f"test/tpr/{name}={level}"] == pytest.approx(row["tpr"], abs=1e-12)
        low, high = m[f"test/demographic_parity_difference/{name}/ci_low"], m[f"test/demographic_parity_difference/{name}/ci_high"]
        assert low < m[f"test/demographic_parity_difference/{name}"] < high
    assert m["test/demographic_parity_difference/sex"] > 0.2  # the toy label depends on sex: the model's decisions do too
    assert [r["group"] for r in result.tables["groups_race"]] == ["Black", "Other", "White"]
    assert {"ece", "precision", "fpr", "count"} <= set(result.tables["groups_sex"][0])


def test_cli_json_and_a_threshold(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with toy_census.registered():
        assert main(["audit", str(trained), "--group", "sex,race", "--bootstrap", "50", "--json"]) == 0
        metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"]
        assert {"test/demographic_parity_difference/sex/ci_low", "test/equalized_odds_difference/race/ci_high", "test/demographic_parity_ratio/sex"} <= set(metrics)
        strict = apply_tool("audit", trained, group=["sex"], bootstrap=0, threshold=0.9).metrics
    assert strict["test/selection_rate"] < metrics["test/selection_rate"]  # a higher bar selects fewer
    assert "test/demographic_parity_difference/sex/ci_low" not in strict


def test_unknown_group_no_attributes_and_multiclass_are_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown group 'gender'.*has: race, sex"):
        apply_tool("audit", trained, group=["gender"])
    digits = api.train({**toy_census.recipe(tmp_path / "runs"), "data": {"name": "digits", "batch_size": 64}, "model": {"name": "mlp", "in_features": 64, "hidden": [8]}, "trainer": {"max_epochs": 1, "progress": "off"}}).run_dir
    with pytest.raises(UserError, match="records no per-row group attributes"):
        apply_tool("audit", digits, group=["sex"])


def test_a_binary_audit_refuses_a_multiclass_model(monkeypatch: pytest.MonkeyPatch, trained: Path) -> None:
    import torch

    import deepstrata.tools.audit as audit

    rows = len(Run.open(trained).split("test"))
    monkeypatch.setattr(audit, "split_logits", lambda run, split: (torch.zeros(rows, 3), torch.zeros(rows, dtype=torch.long)))
    with pytest.raises(UserError, match="need a binary classifier"):
        apply_tool("audit", trained, group=["sex"])
