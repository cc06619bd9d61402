"""`strata attack`: robust accuracy against eps on a tiny trained digits run, through the CLI and the API."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from deepstrata import api
from deepstrata.attacks.base import margin_loss
from deepstrata.attacks.pgd import pgd
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from tests.conftest import TINY_RECIPE

pytestmark = pytest.mark.xdist_group("tools")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = {**copy.deepcopy(TINY_RECIPE), "name": "attack_tiny", "output_dir": str(tmp_path_factory.mktemp("attack") / "runs")}
    return api.train(recipe).run_dir


@pytest.mark.e2e
def test_strata_attack_reports_robust_accuracy_against_eps(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", str(digits_run), "--attack", "pgd", "--eps", "0,0.05,0.2", "--steps", "10", "--limit", "200", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(out[-1])["metrics"]
    clean = metrics["test/clean_accuracy"]
    assert clean > 0.6
    assert metrics["test/robust_accuracy/eps=0"] == clean
    assert metrics["test/robust_accuracy/eps=0.2"] < metrics["test/robust_accuracy/eps=0.05"] < clean
    assert metrics["test/robust_accuracy/eps=0.2"] < 0.1  # observed 0.0: a standard model has no robustness
    result = Run.open(digits_run).latest_tool_result("attack")
    assert [row["eps"] for row in result["tables"]["robust_accuracy"]] == [0.0, 0.05, 0.2]
    assert all(row["max_perturbation"] <= row["eps"] + 1e-6 for row in result["tables"]["robust_accuracy"])
    folder = next((digits_run / "tools" / "attack").iterdir())
    assert sorted(result["figures"]) == ["adversarial_examples.png", "robust_accuracy.png"]
    assert all((folder / name).stat().st_size > 1000 for name in result["figures"])


@pytest.mark.e2e
def test_the_tool_measures_exactly_what_the_attack_returns(digits_run: Path) -> None:
    """Robust accuracy = right on the clean example and on pgd's output, with the tool's seed."""
    run = Run.open(digits_run)
    got = run.apply("attack", attack="pgd", eps=[0.1], steps=5, limit=100, seed=3).metrics["test/robust_accuracy/eps=0.1"]
    model = run.model().eval()
    x, y = (torch.cat(t)[:100] for t in zip(*run.loader("test")))
    adv = pgd(model, x, y, eps=0.1, steps=5, loss=margin_loss, best_iterate=True, generator=torch.Generator().manual_seed(3))  # digits: inputs in [0, 1]; the tool counts best iterates by default
    with torch.no_grad():
        expected = float(((model(x).argmax(1) == y) & (model(adv).argmax(1) == y)).float().mean())
    assert got == pytest.approx(expected)


@pytest.mark.e2e
def test_square_and_fgsm_through_the_tool(digits_run: Path) -> None:
    run = Run.open(digits_run)
    square = run.apply("attack", attack="square", eps=[0.2], queries=100, limit=100).metrics
    assert square["test/robust_accuracy/eps=0.2"] < square["test/clean_accuracy"] - 0.3
    fgsm = run.apply("attack", attack="fgsm", norm="l2", eps=[1.0], limit=100).metrics
    assert fgsm["test/robust_accuracy/eps=1"] < fgsm["test/clean_accuracy"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"attack": "pdg"}, r"unknown attack 'pdg'; did you mean pgd\? \(choices: fgsm, pgd, square"),
        ({"attack": "square", "norm": "l2"}, "square attacks in the linf norm only"),
        ({"eps": [-0.1]}, "eps must be one or more numbers >= 0"),
        ({"steps": 0}, "must be >= 1"),
    ],
)
def test_bad_arguments_are_user_errors(digits_run: Path, args: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        Run.open(digits_run).apply("attack", **args)
