"""The generative task: it logs every objective term, refuses a foreign loss, and runs every generative recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError

REPO = Path(__file__).resolve().parents[2]
GENERATIVE_RECIPES = sorted(
    ["mnist_vae", "mnist_cvae", "mnist_cgan", "mnist_ddpm", "mnist_pixelcnn", "mnist_realnvp", "digits_realnvp", "moons_realnvp", "moons_ddpm", "digits_autoencoder", "digits_gan"]
)


def test_terms_are_logged_per_split_as_batch_weighted_means() -> None:
    from deepstrata.losses.model_objective import ModelObjective
    from deepstrata.models.vae import VAE
    from deepstrata.tasks.generative import generative

    torch.manual_seed(0)
    task = generative(model=VAE(data_shape=(1, 8, 8), latent_dim=2, hidden=(8,)), loss=ModelObjective(), metrics={})
    batches = [(torch.bernoulli(torch.full((n, 1, 8, 8), 0.3)), torch.zeros(n, dtype=torch.long)) for n in (3, 5)]
    outs = []
    for b in batches:
        task.training_step(b)
        outs.append((task._last_terms, b[0].shape[0]))
    metrics = task.compute_metrics("train")
    expected_kl = sum(float(t["kl"]) * n for t, n in outs) / 8
    assert metrics["train/kl"] == pytest.approx(expected_kl)
    assert {"train/loss", "train/recon", "train/kl"} <= set(metrics)
    assert task.compute_metrics("train") == {}  # reset after computing


def test_a_foreign_loss_or_a_classifier_is_refused() -> None:
    from deepstrata.losses.regression import mse
    from deepstrata.models.vae import VAE
    from deepstrata.tasks.generative import generative

    with pytest.raises(UserError, match="remove `loss:`"):
        generative(model=VAE(data_shape=(4,), latent_dim=2, hidden=(8,)), loss=mse(), metrics={})
    with pytest.raises(UserError, match="needs a generative model"):
        generative(model=torch.nn.Linear(2, 2), loss=None, metrics={})


@pytest.mark.e2e
@pytest.mark.parametrize("name", GENERATIVE_RECIPES)
def test_every_generative_recipe_runs_a_few_steps(name: str, tmp_path: Path) -> None:
    """Each recipe as shipped (model, optimizer, schedule, callbacks) trains two steps, tests, saves and reports.

    MNIST recipes run on the 8x8 digits here: evaluating a U-Net or a PixelCNN on MNIST's
    official 10,000 test images takes minutes on a CPU. The MNIST data path itself is
    exercised by tests/models/test_vae.py (binarized_mnist) and the benchmarks.
    """
    from deepstrata.api import load, train

    sets = [f"output_dir={tmp_path}", "trainer.max_epochs=1", "trainer.max_steps=2", "trainer.progress=off"]
    if name.startswith("mnist"):
        sets += ["data.name=digits", "data.val_fraction=0.1", "data.test_fraction=0.2"]
    if name == "mnist_ddpm":
        sets += ["callbacks.0.steps=5"]
    if name == "moons_ddpm":
        sets += ["callbacks.0.n=50"]
    result = train(REPO / "recipes" / f"{name}.yaml", sets)
    assert torch.isfinite(torch.tensor(result.metrics["test/loss"]))
    assert (result.run_dir / "report.html").is_file()
    model = load(result.run_dir).model
    assert hasattr(model, "objective")
