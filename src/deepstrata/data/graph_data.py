"""A graph for node classification: one graph, three node masks, never split into mini-batches.

Problem: in semi-supervised node classification every node takes part in every forward pass
(its features flow to its neighbours) but only a few carry a training label; slicing the
nodes into independent examples, as tabular data is split, would cut the graph apart.
Idea: a dataset factory returns `GraphData` (node features, a (2, E) edge list, labels);
the split chooses *which labels are visible*: the labelled training nodes (fixed, k per
class, or a stratified fraction), validation and test nodes. Each split is a dataset of
length one holding the whole graph plus that split's boolean node mask; the node
classification task computes the loss and metrics on the masked nodes only (the
transductive setting of Kipf & Welling 2017).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deepstrata.errors import DataError


class NodeSplit(Dataset):
    """The whole graph with one split's node mask; one item, so one batch per epoch.

    Item: {"x": (N, F), "edge_index": (2, E), "y": (N,), "mask": (N,) bool}. The default
    DataLoader collation adds a leading batch dimension of 1, which the task removes.
    """

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
        self.graph = {"x": x, "edge_index": edge_index, "y": y, "mask": mask}

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index != 0:
            raise IndexError(f"a node split holds one graph; index {index} is out of range")
        return self.graph

    @property
    def num_nodes(self) -> int:
        return int(self.graph["mask"].sum())


@dataclass
class GraphData:
    """One graph with a label per node, as a registered graph dataset factory returns it.

    x: (N, F) float node features; edge_index: (2, E) int64 (source, target) pairs, both
    directions listed for an undirected graph; y: (N,) int64 labels.
    train_nodes: a fixed set of labelled nodes (e.g. the karate club's two leaders).
    labels_per_class: otherwise, label this many randomly chosen nodes per class (seeded).
    When both are None the labelled nodes are a stratified fraction, like tabular data.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    train_nodes: list[int] | None = None
    labels_per_class: int | None = None
    description: str = ""
    input_spec: dict[str, Any] = field(default_factory=dict)
    task = "node_classification"

    def validate(self, name: str) -> None:
        n = self.x.shape[0]
        if self.x.dim() != 2:
            raise DataError(f"graph dataset '{name}': node features must be (N, F), got {tuple(self.x.shape)}")
        if self.y.shape != (n,) or self.y.dtype != torch.int64:
            raise DataError(f"graph dataset '{name}': labels must be int64 of shape ({n},), got {self.y.dtype} {tuple(self.y.shape)}")
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2 or self.edge_index.dtype != torch.int64:
            raise DataError(f"graph dataset '{name}': edge_index must be int64 (2, E), got {self.edge_index.dtype} {tuple(self.edge_index.shape)}")
        if self.edge_index.numel() and (int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= n):
            raise DataError(f"graph dataset '{name}': edge_index refers to nodes outside 0..{n - 1}")
        if int(self.y.min()) < 0 or int(self.y.max()) >= len(self.class_names):
            raise DataError(f"graph dataset '{name}': a label is outside the class range 0..{len(self.class_names) - 1}")

    def split_nodes(self, *, seed: int, val_fraction: float, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node indices (train, val, test), deterministic from the seed.

        With labelled nodes chosen (fixed or k per class), validation takes `val_fraction` of
        the other nodes (stratified) and every remaining node is a test node.
        """
        from deepstrata.data.base import stratified_split

        y = self.y.numpy()
        n = len(y)
        if self.train_nodes is None and self.labels_per_class is None:
            test, val, train = stratified_split(y, [test_fraction, val_fraction], seed=seed, stratify=True)
            return train, val, test
        if self.train_nodes is not None:
            train = np.array(sorted(set(self.train_nodes)), dtype=np.int64)
        else:
            rng = np.random.default_rng(seed)
            k = int(self.labels_per_class or 0)
            picks = []
            for c in range(len(self.class_names)):
                members = np.flatnonzero(y == c)
                if len(members) <= k:
                    raise DataError(f"class '{self.class_names[c]}' has {len(members)} nodes; cannot label {k} of them and keep some to test")
                picks.append(rng.choice(members, size=k, replace=False))
            train = np.sort(np.concatenate(picks))
        rest = np.setdiff1d(np.arange(n), train)
        if val_fraction <= 0:
            return train, np.array([], dtype=np.int64), rest
        val_rel, test_rel = stratified_split(y[rest], [val_fraction], seed=seed, stratify=True)
        return train, rest[val_rel], rest[test_rel]

    def to_bundle(self, name: str, *, seed: int, val_fraction: float, test_fraction: float) -> Any:
        """The DataBundle the experiment builder expects: three NodeSplits of the same graph."""
        from deepstrata.data.base import DataBundle

        self.validate(name)
        train, val, test = self.split_nodes(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)

        def split(nodes: np.ndarray) -> NodeSplit:
            mask = torch.zeros(len(self.y), dtype=torch.bool)
            mask[torch.as_tensor(nodes, dtype=torch.long)] = True
            return NodeSplit(self.x, self.edge_index, self.y, mask)

        labelled = (
            "fixed nodes" if self.train_nodes is not None
            else f"{self.labels_per_class} per class" if self.labels_per_class is not None
            else "stratified fraction"
        )
        return DataBundle(
            name=name,
            train=split(train),
            val=split(val) if len(val) else None,
            test=split(test),
            task="node_classification",
            num_classes=len(self.class_names),
            class_names=self.class_names,
            input_shape=(self.x.shape[1],),
            input_spec={"shape": [self.x.shape[1]], "graph": {"nodes": len(self.y), "edges": int(self.edge_index.shape[1])}, **self.input_spec},
            split={
                "test": "every node neither labelled for training nor used for validation" if labelled != "stratified fraction" else f"{test_fraction:g} of the nodes",
                "labelled": labelled,
                "train_nodes": train.tolist() if len(train) <= 50 else len(train),
                "seed": seed,
                "train_size": len(train),
                "val_size": len(val),
                "test_size": len(test),
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
            },
        )
