"""`strata uncertainty`: one row per method, scores checked by hand, methods that do not apply refused or skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.tools.uncertainty import score

from tests.tools.digits_jsonl import write_digits_jsonl

pytestmark = pytest.mark.xdist_group("tools")


def _recipe(root: Path, out: Path, dropout: float) -> dict[str, Any]:
    return {
        "name": f"unc_digits_{dropout:g}",
        "data": {"name": "jsonl", "root": str(root), "standardize": False, "batch_size": 64},
        "model": {"name": "mlp", "hidden": [32], "dropout": dropout},
        "optimizer": {"name": "adamw", "lr": 0.01},
        "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1},
        "metrics": ["accuracy"],
        "output_dir": str(out),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("uncertainty")
    root = write_digits_jsonl(base / "data")
    with_dropout = _recipe(root, base / "runs", 0.2)
    return {
        "a": api.train({**with_dropout, "seed": 0}).run_dir,
        "b": api.train({**with_dropout, "seed": 1}).run_dir,
        "plain": api.train({**_recipe(root, base / "runs", 0.0), "seed": 0, "trainer": {**with_dropout["trainer"], "max_epochs": 1}}).run_dir,
    }


def _hand_ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """sum over 15 equal-width confidence bins of |accuracy - confidence| x share of inputs in the bin."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1  # bins (0, 1/15], (1/15, 2/15], ...
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += float(inside.double().mean()) * abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
    return total


def test_scores_on_a_hand_made_example() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])  # the 0.6 one is wrong
    row = score(probs, labels, coverage=0.5)
    assert row["accuracy"] == 0.75 and row["error"] == 0.25
    assert row["nll"] == pytest.approx(-np.log([0.9, 0.4, 0.7, 0.8]).mean())
    assert row["brier"] == pytest.approx(np.mean([2 * 0.1**2, 2 * 0.6**2, 2 * 0.3**2, 2 * 0.2**2]))
    assert row["ece"] == pytest.approx(_hand_ece(probs, labels), abs=1e-6)
    assert row["error_at_50"] == 0.0  # the two most confident (0.9, 0.8) are right
    assert row["aurc"] == pytest.approx((0 + 0 + 0 + 1 / 4) / 4)  # the error is the least confident


def test_every_method_on_a_run_with_members(runs: dict[str, Path]) -> None:
    result = api.apply("uncertainty", runs["a"], members=[str(runs["b"])], mc_samples=8)
    rows = {r["method"]: r for r in result.tables["methods"]}
    assert list(rows) == ["softmax", "mc_dropout", "laplace", "ensemble"]
    m = result.metrics
    for method in rows:
        for key in ("accuracy", "nll", "ece", "brier", "aurc", "error_at_90", "error"):
            assert f"test/{method}/{key}" in m
    assert {"entropy", "mutual_information"} <= set(rows["mc_dropout"]) and {"entropy", "mutual_information"} <= set(rows["ensemble"])
    assert m["test/ensemble/mutual_information"] > 0 and m["test/mc_dropout/mutual_information"] > 0

    # The softmax and ensemble rows, recomputed by hand from the runs' models.
    probs, labels = [], []
    run_a, run_b = Run.open(runs["a"]), Run.open(runs["b"])
    model_a, model_b, task = run_a.model(), run_b.model(), run_a.task()
    with torch.no_grad():
        for batch in run_a.loader("test"):
            x = task.model_inputs(batch)
            probs.append(torch.stack([model_a(*x).softmax(1), model_b(*x).softmax(1)]))
            labels.append(batch[1])
    both, y = torch.cat(probs, dim=1), torch.cat(labels)
    for method, p in (("softmax", both[0]), ("ensemble", both.mean(0))):
        assert m[f"test/{method}/accuracy"] == pytest.approx(float((p.argmax(1) == y).double().mean()))
        assert m[f"test/{method}/nll"] == pytest.approx(float(-p[torch.arange(len(y)), y].double().log().mean()), rel=1e-6)
        assert m[f"test/{method}/ece"] == pytest.approx(_hand_ece(p.double(), y), abs=1e-5)
    assert m["test/softmax/nll"] == pytest.approx(run_a.evaluate("test")["test/loss"], rel=1e-5)

    assert "prior precision" in result.summary and "by marginal likelihood" in result.summary
    saved = json.loads((result.result_dir / "result.json").read_text())
    assert saved["figures"] == ["risk_coverage.png"] and (result.result_dir / "risk_coverage.png").read_bytes().startswith(b"\x89PNG")


def test_an_ensemble_run_gets_its_ensemble_method_from_its_members(runs: dict[str, Path]) -> None:
    derived = api.apply("ensemble", runs["a"], members=[str(runs["b"])]).run_dir
    result = api.apply("uncertainty", derived, methods=["softmax", "ensemble"])
    m = result.metrics
    assert m["test/ensemble/nll"] == pytest.approx(m["test/softmax/nll"], rel=1e-6)  # the ensemble's softmax is the member mean
    assert m["test/ensemble/mutual_information"] > 0


def test_mc_dropout_on_a_model_without_dropout_is_a_user_error(runs: dict[str, Path]) -> None:
    with pytest.raises(UserError, match=r"needs a model trained with dropout.*p=0.*--set model\.dropout=0\.2"):
        api.apply("uncertainty", runs["plain"], methods=["mc_dropout"])
    with pytest.raises(UserError, match="--members RUN2,RUN3"):
        api.apply("uncertainty", runs["plain"], methods=["ensemble"])
    with pytest.raises(UserError, match="unknown method 'mc_dropot'; did you mean mc_dropout"):
        api.apply("uncertainty", runs["plain"], methods=["mc_dropot"])


def test_by_default_only_the_methods_that_apply_run(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["uncertainty", str(runs["plain"]), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k.split("/")[1] for k in line["metrics"]} == {"softmax", "laplace"}
    result = Run.open(runs["plain"]).latest_tool_result("uncertainty")
    assert "Not run: mc_dropout" in result["summary"] and "ensemble (no --members given" in result["summary"]
