"""Exact resume: a run SIGKILLed mid-epoch and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepstrata import api
from deepstrata.cli.main import main as cli_main
from deepstrata.training.callbacks.metrics_logger import read_metrics

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"

KILLER = """
import os, signal, sys
from deepstrata import api
from deepstrata.training.callbacks.base import Callback

class KillAt(Callback):
    def on_train_batch_end(self, trainer, output):
        if trainer.state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final checkpoint

api.train({recipe!r}, {overrides!r}, extra_callbacks=[KillAt()])
"""


@pytest.mark.e2e
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    overrides = [f"output_dir={tmp_path / 'runs'}", "trainer.max_epochs=2", "trainer.checkpoint_every_n_steps=4"]
    reference = api.train(str(RECIPE), overrides).run_dir

    # Digits: 1,258 training images / 64 = 20 steps per epoch; step 30 is mid-way through epoch 2,
    # and the last checkpoint before it was written at step 28.
    script = KILLER.format(step=30, recipe=str(RECIPE), overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
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
