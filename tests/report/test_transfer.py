"""The transfer section: a fine-tuned run's report names its source, its rules and both runs' test metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from deepstrata.report.sections.transfer import learning_rules, transfer

from deepstrata.run.run import Run
from tests.conftest import TINY_RECIPE

TINY = {**TINY_RECIPE, "trainer": {**TINY_RECIPE["trainer"], "max_epochs": 1, "num_threads": 1}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(source run, run fine-tuned from it with feature extraction)."""
    import deepstrata.api as api

    out = str(tmp_path_factory.mktemp("runs"))
    source = api.train({**TINY, "output_dir": out})
    target = {**TINY, "name": "target", "output_dir": out}
    tuned = api.finetune(source.run_dir, target, strategy="feature_extraction")
    return source.run_dir, tuned.run_dir


def test_section_shows_source_strategy_rules_and_both_test_metrics(runs: tuple[Path, Path]) -> None:
    source, tuned = runs
    section = transfer(Run.open(tuned))
    assert section is not None
    assert str(source) in section.html and "small_cnn trained on digits" in section.html
    assert "<code>feature_extraction</code>" in section.html
    assert "<td>head.*</td><td>LR 0.001</td>" in section.html and "<td>*</td><td>frozen</td>" in section.html
    assert "frozen_norm_eval" in section.html
    source_acc = Run.open(source).test_metrics["test/accuracy"]
    tuned_acc = Run.open(tuned).test_metrics["test/accuracy"]
    assert f"<td>test/accuracy</td><td>{source_acc:.4f}</td><td>{tuned_acc:.4f}</td>" in section.html
    assert "Transfer: pretrained weights and what learnt" in (tuned / "report.html").read_text()  # train wrote it


def test_section_is_absent_from_a_run_without_pretrained_weights(runs: tuple[Path, Path]) -> None:
    assert transfer(Run.open(runs[0])) is None  # the source trained from scratch


def test_a_deleted_source_is_named_as_such(runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    source, tuned = runs
    moved = shutil.copytree(tuned, tmp_path / "tuned")
    config = (moved / "config.yaml").read_text().replace(str(source), str(tmp_path / "gone"))
    (moved / "config.yaml").write_text(config)
    section = transfer(Run.open(moved))
    assert section is not None and "(no longer on disk)" in section.html and "<td>test/accuracy</td><td>-</td>" in section.html


def test_rules_fall_back_to_the_recipe_lr() -> None:
    assert learning_rules({"optimizer": {"lr": 0.003}}) == [("*", "LR 0.003 (the recipe's)")]
    rules = learning_rules({"optimizer": {"lr": 0.01, "param_groups": [{"match": "head.*", "lr": 1e-3}, {"match": "*", "lr_scale": 0.1}]}})
    assert rules == [("head.*", "LR 0.001"), ("*", "LR 0.01 (the recipe's) x 0.1")]
