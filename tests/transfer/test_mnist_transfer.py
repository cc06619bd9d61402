"""The MNIST transfer recipes: digits 0-4 -> 5-9 with 50 labels per class, at short settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import requires_shared_data

REPO = Path(__file__).resolve().parents[2]


@requires_shared_data("mnist")
def test_mnist_classes_selects_and_relabels() -> None:
    from deepstrata.data.mnist_classes import mnist_classes

    data = mnist_classes(classes=[5, 6, 7, 8, 9], per_class=50)
    assert data.x.shape == (250, 1, 28, 28) and torch.bincount(data.y).tolist() == [50] * 5
    assert data.class_names == ["5", "6", "7", "8", "9"]
    assert len(data.test_y) == 4861  # every official test image of the digits 5-9
    with pytest.raises(ValueError, match="distinct digits"):
        mnist_classes(classes=[1, 1])


@requires_shared_data("mnist")
@pytest.mark.e2e
def test_mnist04_source_then_fine_tuning_on_5_to_9(tmp_path: Path) -> None:
    """Short settings (1,500 source images for one epoch, then 5 target epochs = 50 steps; measured
    0.935 on 0-4 and 0.621 on 5-9, chance 0.20): the chain runs and learns. Full-length numbers and
    the comparison with training from scratch: benchmarks/transfer_mnist.py, docs/transfer.md."""
    import deepstrata.api as api

    fast = [f"output_dir={tmp_path}", "trainer.num_threads=1"]
    source = api.train(REPO / "recipes/mnist04_cnn.yaml", [*fast, "data.per_class=300", "data.batch_size=32", "scheduler.warmup_steps=5"])
    assert source.metrics["test/accuracy"] >= 0.85
    target = api.finetune(source.run_dir, REPO / "recipes/mnist59_finetune.yaml", [*fast, "trainer.max_epochs=5"], strategy="fine_tuning")
    assert target.metrics["test/accuracy"] >= 0.50  # chance is 0.20
