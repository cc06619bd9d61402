"""Samples over training: what a generative model produces, saved as it learns.

Problem: a generative model's loss can fall while its samples stay blurry, collapse to one
mode or ignore the requested class; one final grid does not show when that happened.
Idea: every few epochs, draw the same latent noise (a fixed seed) through the current model
and save the samples as `samples/epoch_<NNN>.npy`; class-conditional models get labels
0, 1, ..., K-1 repeated, one class per column of the report's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError
from deepstrata.models.generative import class_labels
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback

SAMPLES_DIR = "samples"


class SampleGrid(Callback):
    """Saves `n` samples every `every_n_epochs` epochs (and after the last epoch)."""

    def __init__(self, directory: str | Path, *, n: int = 64, every_n_epochs: int = 1, steps: int | None = None, guidance: float | None = None, seed: int = 0):
        self.directory = Path(directory)
        self.n, self.every, self.steps, self.guidance, self.seed = n, every_n_epochs, steps, guidance, seed

    def setup(self, trainer: Any) -> None:
        if not hasattr(trainer.task.model, "sample"):
            raise UserError(f"callback sample_grid needs a generative model with sample(), got {type(trainer.task.model).__name__}; remove it from callbacks")

    def on_train_epoch_end(self, trainer: Any) -> None:
        epoch = trainer.state.epoch + 1  # epochs completed, counting this one
        last = epoch >= trainer.max_epochs or trainer.state.should_stop
        if epoch % self.every and not last:
            return
        model = trainer.task.model
        was_training = model.training
        model.eval()
        y = class_labels(self.n, getattr(model, "num_classes", 0))
        gen = torch.Generator().manual_seed(self.seed)
        samples = model.sample(self.n, y=None if y is None else y.to(trainer.device), steps=self.steps, guidance=self.guidance, generator=gen)
        model.train(was_training)
        self.directory.mkdir(parents=True, exist_ok=True)
        np.save(self.directory / f"epoch_{epoch:03d}.npy", samples.detach().cpu().float().numpy(), allow_pickle=False)


@register_callback("sample_grid")
def sample_grid(*, run_dir: str, n: int = 64, every_n_epochs: int = 1, steps: int | None = None, guidance: float | None = None, seed: int = 0) -> SampleGrid:
    """Save n samples (same noise each time) to samples/epoch_NNN.npy every few epochs."""
    if n < 1 or every_n_epochs < 1:
        raise UserError(f"sample_grid: n={n} and every_n_epochs={every_n_epochs} must both be >= 1")
    return SampleGrid(Path(run_dir) / SAMPLES_DIR, n=n, every_n_epochs=every_n_epochs, steps=steps, guidance=guidance, seed=seed)
