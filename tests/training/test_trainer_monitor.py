"""A misspelled trainer.monitor fails before step 1 with the names validation logs, leaving no run behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepstrata import api
from deepstrata.errors import UserError
from deepstrata.training.trainer import Trainer
from tests.conftest import TINY_RECIPE


def test_a_misspelled_monitor_fails_before_step_1_and_leaves_no_run(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    with pytest.raises(UserError, match=r"monitors 'val/acuracy'; did you mean val/accuracy\?; validation logs val/accuracy, val/loss") as err:
        api.train({**TINY_RECIPE, "output_dir": str(out)}, ["trainer.monitor=val/acuracy"])
    assert "\n" not in str(err.value)
    assert not out.exists() or not any(out.rglob("*"))  # no half-written run directory


def test_early_stopping_checks_its_monitor_too(tmp_path: Path) -> None:
    recipe = {**TINY_RECIPE, "output_dir": str(tmp_path / "runs"), "callbacks": [{"name": "early_stopping", "monitor": "val/los"}]}
    with pytest.raises(UserError, match="early_stopping monitors 'val/los'; did you mean val/loss"):
        api.train(recipe)


def test_the_probe_leaves_training_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = api.train({**TINY_RECIPE, "output_dir": str(tmp_path / "a")})
    monkeypatch.setattr(Trainer, "validation_metric_names", lambda self: [])  # no probe batch at all
    unchecked = api.train({**TINY_RECIPE, "output_dir": str(tmp_path / "b")})
    assert checked.metrics == unchecked.metrics

    def curves(run_dir: Path) -> list[dict]:
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert curves(checked.run_dir) == curves(unchecked.run_dir)
