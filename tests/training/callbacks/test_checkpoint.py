"""The checkpoint callback: best-k weights by the monitored metric, best.safetensors the best, last.pt at each epoch end."""

from __future__ import annotations

from pathlib import Path

import torch
from tests.training.engine_helpers import tiny
from safetensors.torch import load_file

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.checkpoint import Checkpoint
from deepstrata.training.trainer import Trainer


class ScriptedMetric(Callback):
    adds_validation_metrics = ("val/score",)
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
