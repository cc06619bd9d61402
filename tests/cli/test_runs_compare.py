"""`strata runs` lists finished, unfinished, derived and damaged runs; `strata compare` writes one page for several."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from deepstrata.cli.main import main
from tests.conftest import TINY_RECIPE


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real one-epoch runs of the tiny recipe that differ only in the learning rate."""
    from deepstrata import api

    out = tmp_path_factory.mktemp("trained")
    recipe = {**copy.deepcopy(TINY_RECIPE), "output_dir": str(out / "runs")}
    a = api.train(recipe, ["trainer.max_epochs=1"]).run_dir
    b = api.train(recipe, ["trainer.max_epochs=1", "optimizer.lr=0.003"]).run_dir
    return a, b


def _copy(run: Path, root: Path, stamp: str) -> Path:
    return Path(shutil.copytree(run, root / "tiny" / stamp))


def _rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert main(["runs", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_runs_lists_finished_unfinished_and_damaged(tmp_path: Path, two_runs, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    _copy(two_runs[0], root, "20250101-120000")
    (_copy(two_runs[0], root, "20250102-120000") / "model.safetensors").unlink()  # killed before it wrote its model
    (_copy(two_runs[0], root, "20250103-120000") / "run.json").write_text("{ not json")
    rows = _rows(capsys, str(root))
    assert [r["status"].split(":")[0] for r in rows] == ["finished", "unfinished", "damaged"]  # oldest first
    assert [r["started"] for r in rows] == ["2025-01-01 12:00:00", "2025-01-02 12:00:00", "2025-01-03 12:00:00"]
    assert all(r["recipe"] == "tiny" for r in rows)
    assert set(rows[0]["metrics"]) == {"test/accuracy"} and 0 <= rows[0]["metrics"]["test/accuracy"] <= 1
    assert "run.json" in rows[2]["status"] and "\n" not in rows[2]["status"]
    assert main(["runs", str(root)]) == 0  # the table: one row each, the damaged one named, no traceback
    captured = capsys.readouterr()
    assert "damaged" in captured.out and "unfinished" in captured.out and "Traceback" not in captured.out + captured.err


def test_runs_names_the_parent_of_a_derived_run(tmp_path: Path, two_runs, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    parent = _copy(two_runs[0], root, "20250101-120000")
    child = _copy(two_runs[0], root, "20250101-130000")
    info = json.loads((child / "run.json").read_text())
    info["derived_from"] = {"parent": str(parent), "tool": "prune", "args": {"amount": 0.5}}
    (child / "run.json").write_text(json.dumps(info))
    rows = _rows(capsys, str(root))
    assert [(r["status"], r["parent"]) for r in rows] == [("finished", None), ("derived", str(parent))]


def test_runs_on_a_missing_folder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "strata train" in err


def test_compare_writes_one_page_with_both_runs_and_only_the_differing_key(tmp_path: Path, two_runs, capsys) -> None:
    a, b = two_runs
    out = tmp_path / "cmp" / "compare.html"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    assert f"{a.parent.name}/{a.name}" in page and f"{b.parent.name}/{b.name}" in page
    assert "<img" in page and "test/accuracy" in page
    diff = page[page.index("Config differences") :]
    assert "optimizer.lr" in diff and "0.003" in diff
    assert diff.count("<tr>") == 2  # the header and optimizer.lr: identical keys are left out
    assert "optimizer.name" not in diff and "trainer.max_epochs" not in diff and "data.batch_size" not in diff
