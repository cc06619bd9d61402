"""`strata lr-find` keeps its plot out of the run folders: <output_dir>/lr_find/<recipe>/<timestamp>.png."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deepstrata.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_lr_find_plot_is_kept_apart_from_the_run_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    recipe = REPO / "recipes" / "engine_mlp_digits.yaml"
    assert main(["lr-find", str(recipe), "--set", f"output_dir={runs}", "--steps", "10", "--json"]) == 0
    plot = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["plot"])
    assert plot.parent == runs / "lr_find" / "engine_mlp_digits"
    assert re.fullmatch(r"\d{8}-\d{6}\.png", plot.name) and plot.stat().st_size > 1000
    assert not (runs / "engine_mlp_digits").exists()  # where the recipe's runs go: nothing from lr-find


def test_lr_find_help_says_where_the_plot_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lr-find", "--help"]) == 0
    assert "<output_dir>/lr_find/<recipe>/<timestamp>.png" in capsys.readouterr().out
