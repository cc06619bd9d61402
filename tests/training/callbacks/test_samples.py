"""sample_grid: the same noise through the model every few epochs, one class per column, saved as samples/epoch_NNN.npy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.models.vae import VAE
from deepstrata.training.callbacks.samples import SampleGrid, sample_grid


class RecordingVAE(VAE):
    """A real conditional VAE that also notes how it was asked to sample."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(data_shape=(1, 4, 4), latent_dim=2, hidden=(8,), num_classes=3)
        self.calls: list[dict] = []

    def sample(self, n, *, y=None, steps=None, guidance=None, generator=None) -> torch.Tensor:
        self.calls.append({"n": n, "y": y, "steps": steps, "guidance": guidance, "training": self.training})
        return super().sample(n, y=y, steps=steps, guidance=guidance, generator=generator)


def _epochs(callback: SampleGrid, model: nn.Module, *, max_epochs: int, stop_after: int | None = None) -> None:
    trainer = SimpleNamespace(task=SimpleNamespace(model=model), device=torch.device("cpu"), max_epochs=max_epochs, state=SimpleNamespace(epoch=0, should_stop=False))
    callback.setup(trainer)
    for epoch in range(max_epochs):
        trainer.state.epoch, trainer.state.should_stop = epoch, stop_after == epoch + 1
        callback.on_train_epoch_end(trainer)
        if trainer.state.should_stop:
            return


def test_every_n_epochs_and_the_last_with_the_same_noise_and_one_class_per_column(tmp_path: Path) -> None:
    model = RecordingVAE().train()
    _epochs(sample_grid(run_dir=str(tmp_path), n=7, every_n_epochs=2, steps=5, guidance=1.5, seed=4), model, max_epochs=5)
    saved = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert saved == ["epoch_002.npy", "epoch_004.npy", "epoch_005.npy"]  # every 2nd epoch, and the last one
    arrays = [np.load(tmp_path / "samples" / name, allow_pickle=False) for name in saved]
    assert arrays[0].shape == (7, 1, 4, 4) and arrays[0].dtype == np.float32
    assert all(np.array_equal(arrays[0], a) for a in arrays[1:])  # unchanged weights, same seed: same samples
    call = model.calls[0]
    assert call["y"].tolist() == [0, 1, 2, 0, 1, 2, 0] and (call["n"], call["steps"], call["guidance"]) == (7, 5, 1.5)
    assert not call["training"] and model.training  # sampled in eval mode, then put back to training


def test_an_early_stop_still_saves_that_epoch_and_bad_settings_are_refused(tmp_path: Path) -> None:
    _epochs(SampleGrid(tmp_path, n=3, every_n_epochs=10), RecordingVAE(), max_epochs=30, stop_after=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_004.npy"]
    other_seed = SampleGrid(tmp_path / "other", n=3, every_n_epochs=1, seed=1)
    _epochs(other_seed, RecordingVAE(), max_epochs=1)
    assert not np.array_equal(np.load(tmp_path / "epoch_004.npy"), np.load(tmp_path / "other" / "epoch_001.npy"))
    with pytest.raises(UserError, match="needs a generative model with sample"):
        _epochs(SampleGrid(tmp_path), nn.Linear(2, 2), max_epochs=1)
    with pytest.raises(UserError, match="must both be >= 1"):
        sample_grid(run_dir=str(tmp_path), n=0)
