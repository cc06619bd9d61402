"""Node classification: loss and metrics on the masked nodes only; the graph recipes reach their floors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from deepstrata.config import load_recipe
from deepstrata.experiment import build_experiment
from deepstrata.losses.cross_entropy import CrossEntropy
from deepstrata.tasks.node_classification import GraphBatch, NodeClassificationTask
from deepstrata.training.trainer import Trainer

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class Fixed(nn.Module):
    """A 'model' that returns given logits, to check what the task does with them."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_loss_and_metrics_use_only_the_masked_nodes() -> None:
    from torchmetrics.classification import MulticlassAccuracy

    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 1, 1])  # nodes 1 and 2 are wrong, 0 and 3 right
    task = NodeClassificationTask(Fixed(logits), CrossEntropy(), {"accuracy": MulticlassAccuracy(num_classes=2, average="micro")})
    batch = {"x": torch.zeros(1, 4, 1), "edge_index": torch.zeros(1, 2, 0, dtype=torch.long), "y": y[None], "mask": torch.tensor([[True, False, False, True]])}
    out = task.evaluation_step(batch, "test")
    assert out.batch_size == 2
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(logits[[0, 3]], y[[0, 3]]))
    assert task.compute_metrics("test")["test/accuracy"] == 1.0


def test_graph_batch_rejects_missing_parts() -> None:
    with pytest.raises(ValueError, match=r"missing \['edge_index', 'mask'\]"):
        GraphBatch.from_batch({"x": torch.zeros(3, 1), "y": torch.zeros(3)})


def train_recipe(recipe_file: str, overrides: list[str]) -> dict[str, float]:
    """Train a recipe's experiment with the plain loop (no run directory): the cheap way to repeat seeds."""
    from deepstrata.training.environment import torch_threads

    recipe = load_recipe(RECIPES / recipe_file, overrides)
    with torch_threads(1):  # full-graph steps on small graphs: a second thread only adds synchronisation
        exp = build_experiment(recipe)
        trainer = Trainer(max_epochs=recipe.trainer.max_epochs, device="cpu")
        trainer.fit(exp.task, exp.loader("train"), exp.loader("val"), optimizer=exp.build_optimizer())
        return trainer.test(exp.task, exp.loader("test"))


@pytest.mark.e2e
def test_karate_gcn_classifies_the_club_from_two_labels_over_10_seeds() -> None:
    """The issue's floor: >= 90% of the 32 unlabelled members, averaged over 10 seeds (measured: 96.6%)."""
    accuracies = [train_recipe("karate_gcn.yaml", [f"seed={seed}"])["test/accuracy"] for seed in range(10)]
    assert sum(accuracies) / len(accuracies) >= 0.90, accuracies


@pytest.mark.e2e
def test_karate_gat_learns_the_factions() -> None:
    accuracies = [train_recipe("karate_gat.yaml", [f"seed={seed}"])["test/accuracy"] for seed in range(3)]
    assert sum(accuracies) / 3 >= 0.80, accuracies  # 10 seeds at full length measured 92.8%


@pytest.mark.e2e
def test_digits_knn_gcn_beats_a_classifier_that_ignores_the_graph() -> None:
    """With 10 labels per class, the graph lifts accuracy over logistic regression on the same 100 images."""
    from sklearn.linear_model import LogisticRegression

    from deepstrata.data.graphs import digits_knn

    metrics = train_recipe("digits_knn_gcn.yaml", ["trainer.max_epochs=40"])
    g = digits_knn()
    train, _, test = g.split_nodes(seed=0, val_fraction=0.1, test_fraction=0.2)
    x, y = g.x.numpy(), g.y.numpy()
    baseline = (LogisticRegression(max_iter=2000).fit(x[train], y[train]).predict(x[test]) == y[test]).mean()
    assert metrics["test/accuracy"] >= baseline + 0.02, (metrics, baseline)  # full length: 95.9% vs 91.0%
