"""Exact resume: a run SIGKILLed mid-epoch and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepstrata import api
from deepstrata.cli.main import main as cli_main
from deepstrata.training.callbacks.metrics_logger import read_metrics
from tests.training.engine_helpers import train_until_sigkill

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"


@pytest.mark.e2e
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    overrides = [f"output_dir={tmp_path / 'runs'}", "trainer.max_epochs=2", "trainer.checkpoint_every_n_steps=4"]
    reference = api.train(str(RECIPE), overrides).run_dir

    # Digits: 1,258 training images / 64 = 20 steps per epoch; step 30 is mid-way through epoch 2,
    # and the last checkpoint before it was written at step 28.
    train_until_sigkill(str(RECIPE), overrides, step=30, cwd=tmp_path)
    run_dir = next(p for p in (tmp_path / "runs" / "engine_mlp_digits").iterdir() if p != reference)
    assert not (run_dir / "model.safetensors").exists()
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["trainer"]["global_step"], saved["trainer"]["epoch"], saved["trainer"]["batch_idx"]) == (28, 1, 8)

    assert cli_main(["train", "--resume", str(run_dir)]) == 0

    ref, resumed = load_file(reference / "model.safetensors"), load_file(run_dir / "model.safetensors")
    for name in ref:
        assert torch.equal(ref[name], resumed[name]), name
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["scope"] == "step"]
    assert steps == list(range(1, 41))  # replayed steps 29-30 are logged once
    ref_test = json.loads(json.dumps(read_metrics(reference / "metrics.jsonl")[-1]))
    assert read_metrics(run_dir / "metrics.jsonl")[-1] == ref_test


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    from deepstrata.errors import UserError

    (tmp_path / "config.yaml").write_text(RECIPE.read_text())
    with pytest.raises(UserError, match="no checkpoint"):
        api.train(None, resume=tmp_path)
