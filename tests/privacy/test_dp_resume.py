"""Exact resume under DP-SGD: a run SIGKILLed mid-epoch and resumed ends with the same weights
and the same epsilon as an uninterrupted one (Poisson draws from (seed, epoch, step), the noise
from the checkpointed RNG, the accountant's history in the checkpoint)."""

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
RECIPE = REPO / "recipes" / "digits_cnn.yaml"


@pytest.mark.e2e
def test_sigkill_mid_epoch_then_resume_gives_the_same_weights_and_epsilon(tmp_path: Path) -> None:
    # BatchNorm is replaced by GroupNorm (the fix is redone on resume) and dropout draws from the RNG.
    overrides = [
        f"output_dir={tmp_path / 'runs'}", "trainer.max_epochs=2", "trainer.checkpoint_every_n_steps=4",
        "trainer.progress=off", "trainer.num_threads=1", "model.widths=[8,16]", "data.batch_size=64",
        "trainer.strategy={name: dp_sgd, noise_multiplier: 1.1, max_grad_norm: 1.0}",
    ]
    reference = api.train(str(RECIPE), overrides).run_dir

    # Digits: 1,257 training images, 1257 // 64 = 19 Poisson steps per epoch; step 27 is mid-way
    # through epoch 2, and the last checkpoint before it was written at step 24.
    train_until_sigkill(str(RECIPE), overrides, step=27, cwd=tmp_path)
    run_dir = next(p for p in (tmp_path / "runs" / "digits_cnn").iterdir() if p != reference)
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["trainer"]["global_step"], saved["trainer"]["epoch"]) == (24, 1)
    assert sum(n for _, _, n in saved["strategy"]["history"]) == 24  # the accountant had counted 24 steps

    assert cli_main(["train", "--resume", str(run_dir)]) == 0

    ref, resumed = load_file(reference / "model.safetensors"), load_file(run_dir / "model.safetensors")
    for name in ref:
        assert torch.equal(ref[name], resumed[name]), name
    ref_info, info = (json.loads((d / "run.json").read_text())["strategy"] for d in (reference, run_dir))
    assert info["steps"] == ref_info["steps"] == 38
    assert info["epsilon"] == ref_info["epsilon"]
    epsilons = [[r["train/epsilon"] for r in read_metrics(d / "metrics.jsonl") if r["scope"] == "epoch"] for d in (reference, run_dir)]
    assert epsilons[0] == epsilons[1] and len(epsilons[0]) == 2
