"""`strata finetune` reports its run the way `strata train` does: the metrics table, run:, report:."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepstrata.api import RunResult
from deepstrata.cli.main import main


def test_finetune_prints_the_same_table_run_and_report_lines_as_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import deepstrata.api
    import deepstrata.transfer.finetune

    result = RunResult(run_dir=tmp_path / "runs" / "target" / "20260101-000000", metrics={"test/accuracy": 0.9583, "test/loss": 0.2198})
    monkeypatch.setattr(deepstrata.api, "train", lambda *args, **kwargs: result)
    monkeypatch.setattr(deepstrata.transfer.finetune, "finetune", lambda *args, **kwargs: result)

    assert main(["train", str(tmp_path / "target.yaml")]) == 0
    trained = capsys.readouterr().out
    assert main(["finetune", str(tmp_path / "source_run"), str(tmp_path / "target.yaml")]) == 0
    finetuned = capsys.readouterr().out

    assert finetuned == trained
    lines = finetuned.strip().splitlines()
    assert "test metrics" in lines[0] and any("test/accuracy" in line and "0.9583" in line for line in lines)
    assert lines[-2:] == [f"run: {result.run_dir}", f"report: {result.run_dir / 'report.html'}"]
