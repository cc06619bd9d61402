"""The LR range test: the curve falls, then diverges; the suggestion trains well, the largest LR does not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tests.training.engine_helpers import make_data, make_loader, make_task

from deepstrata.cli.main import main as cli_main
from deepstrata.training.lr_finder import lr_range_test
from deepstrata.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]


def _final_loss(lr: float) -> float:
    task = make_task(0)
    loader = make_loader(make_data(192), 16)
    Trainer(max_epochs=2).fit(task, loader, optimizer=torch.optim.SGD(task.parameters(), lr=lr))
    with torch.no_grad():
        x, y = make_data(192).tensors
        return float(torch.nn.functional.cross_entropy(task.model(x), y))


def test_sweep_diverges_and_the_suggestion_beats_tiny_and_huge_learning_rates() -> None:
    task = make_task(0)
    loader = make_loader(make_data(192), 16)
    result = lr_range_test(task, loader, torch.optim.SGD(task.parameters(), lr=1.0), min_lr=1e-4, max_lr=1e3, num_steps=80)
    assert result.stopped_early and result.lrs[-1] < 1e3  # the loss exploded before the end of the sweep
    assert 1e-4 < result.suggestion < result.lrs[-1]
    good, tiny, huge = _final_loss(result.suggestion), _final_loss(1e-4), _final_loss(result.lrs[-1])
    assert good < tiny and (good < huge or not math.isfinite(huge))


def test_cli_writes_the_plot_and_prints_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lr.png"
    code = cli_main(["lr-find", str(REPO / "recipes" / "engine_mlp_digits.yaml"), "--steps", "30", "--out", str(out), "--json"])
    assert code == 0 and out.stat().st_size > 1000
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["plot"] == str(out) and 1e-7 <= payload["suggestion"] <= 10
