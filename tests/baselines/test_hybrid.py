"""Hybrids of a tabular network and boosted trees: fitted on the run's train rows, blend weight chosen on validation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from deepstrata.baselines.hybrid import BLEND_GRID, choose_blend_weight, fit_hybrids, scores, split_arrays
from deepstrata.errors import UserError
from tests.data.test_adult import synthetic_rows, write_adult


def tiny_adult_run(tmp_path: Path, *, model: dict | None = None, epochs: int = 3) -> Path:
    """A tabular_mlp trained for seconds on 400 synthetic Adult-format rows (200 test rows)."""
    from deepstrata.api import train

    root = write_adult(tmp_path / "adult", train=synthetic_rows(400, 0), test=synthetic_rows(200, 1, test=True))
    recipe = {
        "name": "tiny_adult",
        "seed": 0,
        "data": {"name": "adult", "root": str(root), "batch_size": 32, "val_fraction": 0.25},
        "model": model or {"name": "tabular_mlp", "hidden": [16]},
        "optimizer": {"name": "adamw", "lr": 0.01},
        "trainer": {"max_epochs": epochs, "progress": "off", "num_threads": 1, "monitor": "val/accuracy", "monitor_mode": "max"},
        "metrics": ["accuracy"],
        "output_dir": str(tmp_path / "runs"),
    }
    return train(recipe).run_dir


def test_scores_are_sklearns() -> None:
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=50)
    probs, y = np.stack([1 - p1, p1], 1), rng.integers(0, 2, 50)
    got = scores(probs, y)
    assert got["accuracy"] == ((p1 > 0.5) == y).mean()
    assert got["auroc"] == pytest.approx(roc_auc_score(y, p1)) and got["log_loss"] == pytest.approx(log_loss(y, probs))


def test_blend_weight_is_the_validation_log_loss_minimum() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    truth = np.eye(2)[y]
    good, noise = 0.8 * truth + 0.1, rng.dirichlet([1, 1], 200)
    assert choose_blend_weight(good, noise, y)[0] == 1.0
    assert choose_blend_weight(noise, good, y)[0] == 0.0
    # Two half-informative sources, each right on a different half: the mix beats either alone.
    a, b = good.copy(), good.copy()
    a[:100], b[100:] = 0.5, 0.5
    w, curve = choose_blend_weight(a, b, y)
    assert 0.0 < w < 1.0 and [c["weight"] for c in curve] == BLEND_GRID.tolist()
    assert min(c["log_loss"] for c in curve) == next(c["log_loss"] for c in curve if c["weight"] == w)


def test_needs_a_table() -> None:
    from deepstrata.models.mlp import MLP

    data = SimpleNamespace(name="digits", input_spec={"shape": [64]}, val=None)
    fake = SimpleNamespace(path="r", architecture="mlp", model=lambda: MLP(in_features=64, num_classes=10), experiment=lambda: SimpleNamespace(data=data))
    with pytest.raises(UserError, match="no table with categorical columns"):
        fit_hybrids(fake)


@pytest.mark.e2e
def test_hybrids_on_a_tiny_run(tmp_path: Path) -> None:
    from deepstrata.run.run import Run
    from deepstrata.tools.base import apply_tool

    run = Run.open(tiny_adult_run(tmp_path))
    result = fit_hybrids(run)
    assert [r["model"] for r in result.rows] == ["network", "gradient_boosting", "embeddings_gbdt", "stacked_blend"]
    data = run.experiment().data
    val_y, test_y = split_arrays(data.val)[1], split_arrays(data.test)[1]
    p = result.probabilities
    # The network's probabilities are the run's own model on the split; the blend is the convex mix with the chosen w.
    x_test = split_arrays(data.test)[0]
    with torch.no_grad():
        np.testing.assert_allclose(p["network"]["test"], torch.softmax(run.model().eval()(x_test).double(), 1).numpy(), atol=1e-6)
    w = result.blend_weight
    np.testing.assert_allclose(p["stacked_blend"]["test"], w * p["network"]["test"] + (1 - w) * p["gradient_boosting"]["test"])
    assert w == choose_blend_weight(p["network"]["val"], p["gradient_boosting"]["val"], val_y)[0]  # chosen on validation
    blend = next(r for r in result.rows if r["model"] == "stacked_blend")
    assert blend["test_accuracy"] == round(float((p["stacked_blend"]["test"].argmax(1) == test_y).mean()), 5)
    assert len(test_y) == 200 and all(0.5 < r["test_accuracy"] <= 1 for r in result.rows)  # the synthetic label has signal
    # The tool writes the same numbers as an analysis of the run.
    tool = apply_tool("hybrid", run)
    assert tool.metrics["blend_weight"] == w and tool.metrics["test/stacked_blend/accuracy"] == blend["test_accuracy"]
    assert (tool.result_dir / "result.json").is_file()
    # A network without categorical embeddings (FT-Transformer) gets the blend, not the embeddings -> GBDT row.
    ft = Run.open(tiny_adult_run(tmp_path, model={"name": "ft_transformer", "d_token": 8, "n_blocks": 1, "heads": 2}, epochs=2))
    ft_result = fit_hybrids(ft)
    assert [r["model"] for r in ft_result.rows] == ["network", "gradient_boosting", "stacked_blend"]
    np.testing.assert_allclose(ft_result.probabilities["gradient_boosting"]["test"], p["gradient_boosting"]["test"])  # same seed: same split, same trees
