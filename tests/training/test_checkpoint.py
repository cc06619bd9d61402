"""Checkpoints: best-k by the monitored metric, and a kill during a write never corrupts the last good file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from tests.training.engine_helpers import tiny
from safetensors.torch import load_file

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.checkpoint import Checkpoint
from deepstrata.training.trainer import Trainer


class ScriptedMetric(Callback):
    def __init__(self, values: list[float]):
        self.values, self.weights = values, []

    def on_validation_end(self, trainer) -> None:
        trainer.state.val_metrics["val/score"] = self.values[trainer.state.epoch]
        self.weights.append({k: v.clone() for k, v in trainer.task.model.state_dict().items()})


def test_keeps_the_best_k_by_the_monitor_and_best_is_the_best(tmp_path: Path) -> None:
    task, loader, val = tiny(0)
    script = ScriptedMetric([0.2, 0.9, 0.4, 0.95, 0.1])
    ckpt = Checkpoint(tmp_path, monitor="val/score", mode="max", save_top_k=2)
    Trainer(max_epochs=5, callbacks=[script, ckpt]).fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.5))
    kept = sorted(p.name for p in tmp_path.glob("best-*.safetensors"))
    assert kept == ["best-epoch=001-val_score=0.9000.safetensors", "best-epoch=003-val_score=0.9500.safetensors"]
    best = load_file(tmp_path / "best.safetensors")
    for name, value in script.weights[3].items():
        assert torch.equal(best[name], value)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["trainer"]["epoch"] == 4 and last["trainer"]["batch_idx"] == 6  # written at the end of the 5th epoch


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    torch.save({"step": torch.tensor(7)}, target)
    script = f"""
import os, signal
from pathlib import Path
from deepstrata.run.atomic import atomic_write

def half_then_die(path: Path) -> None:
    path.write_bytes(b"PK-not-a-whole-checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(Path({str(target)!r}), half_then_die)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9
    assert int(torch.load(target, weights_only=True)["step"]) == 7  # still the old, whole file
