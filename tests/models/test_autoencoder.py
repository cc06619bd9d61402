"""Autoencoders: denoising corrupts only in training, and reconstruction error flags anomalies."""

from __future__ import annotations

import pytest
import torch

from deepstrata.models.autoencoder import Autoencoder


def test_denoising_noise_is_applied_in_training_only() -> None:
    torch.manual_seed(0)
    model = Autoencoder(data_shape=(1, 8, 8), kind="dense", latent_dim=4, hidden=16, noise_std=0.5)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    assert torch.equal(model.objective(x)["loss"], model.objective(x)["loss"])
    model.train()
    assert not torch.equal(model.objective(x)["loss"], model.objective(x)["loss"])


def test_conv_autoencoder_checks_its_input_and_has_no_sampler() -> None:
    from deepstrata.errors import UserError

    with pytest.raises(ValueError, match="divisible by 4"):
        Autoencoder(data_shape=(1, 6, 6), kind="conv")
    model = Autoencoder(data_shape=(1, 8, 8), kind="conv", latent_dim=4, hidden=16)
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"Autoencoder\(conv\).encoder expected \(N, 1, 8, 8\) input"):
        model(torch.rand(3, 64))
    with pytest.raises(UserError, match="no prior"):
        model.sample(2)


@pytest.mark.e2e
def test_reconstruction_error_separates_digits_from_other_images(tmp_path) -> None:
    """Trained on digits, the autoencoder reconstructs held-out digits far better than
    anomalies made from the same pixels (each test digit with its pixels shuffled): AUROC > 0.95."""
    from sklearn.metrics import roc_auc_score

    from deepstrata.api import load, train
    from deepstrata.data.base import build_data

    result = train("recipes/digits_autoencoder.yaml", [f"output_dir={tmp_path}", "trainer.max_epochs=10", "trainer.progress=off"])
    model = load(result.run_dir).model
    data = build_data("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
    normal = torch.stack([data.test[i][0] for i in range(len(data.test))])
    gen = torch.Generator().manual_seed(0)
    shuffled = torch.stack([img.flatten()[torch.randperm(64, generator=gen)].view(1, 8, 8) for img in normal])
    scores = torch.cat([model.anomaly_score(normal), model.anomaly_score(shuffled)])
    labels = [0] * len(normal) + [1] * len(shuffled)
    assert roc_auc_score(labels, scores.numpy()) > 0.95
