"""Node classification: label the nodes of one graph from a few labelled ones.

Problem: a graph network must see the whole graph in every step (a node's prediction
depends on its neighbours), yet the loss may only use the labels of the training nodes,
and validation and test accuracy must be measured on other nodes of the same graph.
Idea: every batch is the whole graph plus one split's boolean node mask (see
`data/graph_data.py`); the model maps (node features, edge list) to logits for all nodes,
and the loss and metrics look only at the masked rows. (Kipf & Welling 2017.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from deepstrata.registry import register_task
from deepstrata.tasks.base import Quality, StepOutput, Task


@dataclass
class GraphBatch:
    """x: (N, F) node features, edge_index: (2, E), y: (N,) labels, mask: (N,) bool."""

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_batch(cls, batch: dict[str, torch.Tensor]) -> GraphBatch:
        """Accept the graph as NodeSplit stores it or as the DataLoader collates it (leading 1)."""
        missing = {"x", "edge_index", "y", "mask"} - set(batch)
        if missing:
            raise ValueError(f"node classification expects graph batches with x, edge_index, y and mask; missing {sorted(missing)}")
        parts = dict(batch)
        if parts["edge_index"].dim() == 3:  # (1, 2, E): the loader's batch of one graph
            if parts["edge_index"].shape[0] != 1:
                raise ValueError(f"node classification takes one graph per batch, got {parts['edge_index'].shape[0]}")
            parts = {k: v[0] for k, v in parts.items()}
        return cls(parts["x"], parts["edge_index"], parts["y"], parts["mask"].bool())


class NodeClassificationTask(Task):
    """Whole-graph forward, loss and metrics on the split's masked nodes only."""

    kind = "node_classification"
    default_loss = "cross_entropy"
    default_metrics = ("accuracy",)
    quality = Quality("accuracy", good_at=0.8)
    reads = "none"
    counts_samples = False  # a step's batch_size is the number of labelled nodes of one graph
    predict_hint = "a node-classification run predicts the nodes of its own graph; use `strata evaluate RUN_DIR`"

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model(x, edge_index)

    def model_inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (N, F), edge_index (2, E)): the whole graph, as `forward` takes it."""
        g = GraphBatch.from_batch(batch)
        return g.x, g.edge_index

    def repeat_inputs(self, inputs: tuple[Any, ...], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n disjoint copies of the graph (a sample is one whole graph): (n N, F) features, (2, n E) edges."""
        x, edge_index = inputs
        offsets = torch.arange(n, device=edge_index.device).repeat_interleave(edge_index.shape[1]) * x.shape[0]  # (n E,)
        return x.repeat(n, 1), edge_index.repeat(1, n) + offsets

    def shared_step(self, batch: Any) -> StepOutput:
        g = GraphBatch.from_batch(batch)
        logits = self.model(g.x, g.edge_index)  # (N, K): every node, labelled or not
        logits, target = logits[g.mask], g.y[g.mask]  # (M, K), (M,): this split's nodes
        loss = self.loss_fn(logits, target)
        return StepOutput(loss=loss, batch_size=int(target.shape[0]), preds=logits, target=target)

    @torch.no_grad()
    def predict(self, batch: Any) -> dict[str, Any]:  # type: ignore[override]
        """Class and probability for every node of the graph: {"label": (N,), "probability": (N,), ...}."""
        g = GraphBatch.from_batch(batch)
        probs = torch.softmax(self.model(g.x, g.edge_index), dim=1)
        conf, label = probs.max(dim=1)
        return {"label": label, "probability": conf, "probabilities": probs}


@register_task("node_classification")
def node_classification(*, model: Any, loss: Any, metrics: dict[str, Any]) -> NodeClassificationTask:
    """Classify the nodes of one graph; loss and metrics on each split's node mask."""
    return NodeClassificationTask(model, loss, metrics)
