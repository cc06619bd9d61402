"""The comparison page: overlaid curves, test metrics side by side, only the config keys that differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepstrata.errors import UserError
from deepstrata.report.compare import ABSENT, build_comparison, config_diff, flatten, labels
from deepstrata.run.run import Run


def _run(path: Path, lr: float, accuracy: float, **config) -> Run:
    path.mkdir(parents=True)
    records = [
        {"scope": "epoch", "epoch": e, "train/loss": 1 / e, "val/loss": 1.1 / e, "val/accuracy": accuracy - 0.1 / e} for e in (1, 2, 3)
    ] + [{"scope": "test", "test/loss": 0.4, "test/accuracy": accuracy}]
    cfg = {"name": "digits", "seed": 0, "optimizer": {"name": "adamw", "lr": lr}, "trainer": {"max_epochs": 3}, **config}
    return Run(path, config=cfg, info={}, records=records)


def test_flatten_and_diff_keep_only_differing_dotted_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x", "f": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x", "f": {}}
    diff = config_diff([
        {"optimizer": {"lr": 0.01, "name": "adamw"}, "metrics": ["accuracy"], "seed": 0},
        {"optimizer": {"lr": 0.003, "name": "adamw"}, "metrics": ["accuracy", "f1_macro"], "seed": 0, "scheduler": {"name": "cosine"}},
    ])
    assert diff == {
        "metrics": [["accuracy"], ["accuracy", "f1_macro"]],
        "optimizer.lr": [0.01, 0.003],
        "scheduler.name": [ABSENT, "cosine"],
    }
    assert config_diff([{"a": 1}, {"a": 1}]) == {}


def test_labels_are_unique(tmp_path: Path) -> None:
    a, b = Run(tmp_path / "x" / "r1" / "t1"), Run(tmp_path / "y" / "r1" / "t1")
    assert labels([Run(tmp_path / "r1" / "t1"), Run(tmp_path / "r1" / "t2")]) == ["r1/t1", "r1/t2"]
    assert labels([a, b]) == [str(a.path), str(b.path)]


def test_page_overlays_curves_and_tabulates_metrics_and_differences(tmp_path: Path) -> None:
    a = _run(tmp_path / "digits" / "20250101-000000", 0.01, 0.95)
    b = _run(tmp_path / "digits" / "20250102-000000", 0.003, 0.90, scheduler={"name": "cosine"})
    page = build_comparison([a, b], tmp_path / "out" / "compare.html").read_text()
    assert "digits/20250101-000000" in page and "digits/20250102-000000" in page
    assert page.count("<img") == 1 and "test/accuracy" in page and "0.9500" in page and "0.9000" in page
    diff = page[page.index("Config differences") :]
    assert "optimizer.lr" in diff and "scheduler.name" in diff and ABSENT in diff
    assert "optimizer.name" not in diff and "trainer.max_epochs" not in diff and "seed" not in diff


def test_fewer_than_two_runs_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="at least two runs"):
        build_comparison([_run(tmp_path / "d" / "t", 0.01, 0.9)], tmp_path / "c.html")
