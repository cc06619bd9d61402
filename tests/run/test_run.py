"""`Run`: one object opens a finished run, old or new, and hands out checked pieces of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepstrata.errors import UserError
from deepstrata.run.run import Run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepstrata import api
    from tests.conftest import TINY_RECIPE

    out = tmp_path_factory.mktemp("runs")
    return api.train({**TINY_RECIPE, "output_dir": str(out)}, ["trainer.max_epochs=1"]).run_dir


@pytest.fixture
def pre_change_run(tmp_path: Path) -> Path:
    """A run written by deepstrata before Run existed (commit 57bd7a3), copied so tests may edit it."""
    target = tmp_path / "pre_run_digits"
    shutil.copytree(FIXTURES / "pre_run_digits", target)
    return target


def test_open_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        Run.open(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no config.yaml"):
        Run.open(tmp_path)


def test_run_written_before_this_change_opens_evaluates_and_predicts(pre_change_run: Path) -> None:
    run = Run.open(pre_change_run)
    assert run.recipe.name == "old_digits" and run.architecture == "small_cnn" and run.task_name == "classification"
    recorded = run.test_metrics
    assert recorded["test/accuracy"] == pytest.approx(0.8472222089767456, abs=0)
    # The same split, the same weights: the same predictions, so the same accuracy to the last bit;
    # the mean float32 loss agrees to float32 precision (its last bits follow the CPU's kernels:
    # on one machine 0.6987739854 against the recorded 0.6987739510).
    evaluated = run.evaluate("test")
    assert evaluated.keys() == recorded.keys() and evaluated["test/accuracy"] == recorded["test/accuracy"]
    assert evaluated["test/loss"] == pytest.approx(recorded["test/loss"], rel=1e-6)
    digits = run.split("test")
    x, y = digits[0]
    rows = run.predictor().predict((x.numpy() * 16.0)[None])  # the predictor takes raw 0..16 grey levels
    assert rows[0]["class_name"] == str(rows[0]["label"]) and 0 < rows[0]["probability"] <= 1
    from deepstrata.report import build_report

    page = build_report(run).read_text()
    assert "Final metrics" in page and "0.8472" in page


def test_evaluate_reproduces_the_trained_test_metrics_exactly(tiny_run: Path) -> None:
    run = Run.open(tiny_run)
    assert run.evaluate("test") == run.test_metrics
    val = run.evaluate("val")
    assert set(val) == {"val/loss", "val/accuracy"}
    assert len(run.split("train")) + len(run.split("val")) + len(run.split("test")) == 1797  # all of digits, once


def test_pieces_are_checked(tiny_run: Path) -> None:
    run = Run.open(tiny_run)
    with pytest.raises(UserError, match="did you mean test"):
        run.split("tset")
    assert run.class_names == [str(i) for i in range(10)]
    first, second = run.model(), run.model()
    assert first is not second  # each call a fresh copy: a tool may change it
    assert run.history and all(r["scope"] == "epoch" for r in run.history)
    assert run.parent is None and run.lineage == [{"run_dir": str(tiny_run), "tool": None, "args": {}}]
    assert run.tool_results() == []


def test_a_changed_split_is_refused(tmp_path: Path, tiny_run: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    info = json.loads((copy / "run.json").read_text())
    info["split"]["test_indices_sha256"] = "0" * 64
    (copy / "run.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="differs from the one the run used"):
        Run.open(copy).split("test")


def test_damaged_files_give_one_line_naming_the_file(tmp_path: Path, tiny_run: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (copy / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="run.json: not valid JSON") as err:
        Run.open(copy).info
    assert "\n" not in str(err.value)
    (copy / "config.yaml").write_text("name: [unclosed")
    with pytest.raises(UserError, match="config.yaml: not valid YAML"):
        Run.open(copy).config


def test_unfinished_run_says_how_to_resume(tmp_path: Path, tiny_run: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(UserError, match="strata train --resume"):
        Run.open(copy).model()


def test_metrics_file_cut_off_mid_line_keeps_the_records_before_it(tmp_path: Path, tiny_run: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    text = (copy / "metrics.jsonl").read_text()
    (copy / "metrics.jsonl").write_text(text + '{"scope": "ep')
    assert len(Run.open(copy).records) == len(Run.open(tiny_run).records)


def test_lineage_and_tool_results_are_read_from_the_directories(tmp_path: Path, tiny_run: Path) -> None:
    child = tmp_path / "child"
    shutil.copytree(tiny_run, child)
    info = json.loads((child / "run.json").read_text())
    info["derived_from"] = {"parent": str(tiny_run), "tool": "prune", "args": {"amount": 0.5}}
    (child / "run.json").write_text(json.dumps(info))
    result_dir = child / "tools" / "profile" / "20260101-000000"
    result_dir.mkdir(parents=True)
    (result_dir / "result.json").write_text(json.dumps({"tool": "profile", "metrics": {"params": 3.0}}))
    run = Run.open(child)
    assert run.parent is not None and run.parent.path == tiny_run
    assert [step["tool"] for step in run.lineage] == [None, "prune"]
    assert run.lineage[-1]["args"] == {"amount": 0.5}
    assert run.latest_tool_result("profile")["metrics"] == {"params": 3.0}
    assert run.latest_tool_result("profile")["dir"] == str(result_dir)


def test_predictions_dump_is_the_tasks(tiny_run: Path) -> None:
    preds = Run.open(tiny_run).predictions
    assert preds is not None
    assert len(preds["y_true"]) == len(Run.open(tiny_run).split("test"))
    assert np.allclose(preds["probs"].sum(axis=1), 1.0, atol=1e-5)
    assert (preds["y_pred"] == preds["probs"].argmax(axis=1)).all()
