"""Graphs for node classification that load offline: Zachary's karate club and a digits k-NN graph.

Problem: graph networks need real graphs with node labels, and the usual citation graphs
(Cora, CiteSeer) must be downloaded.
Idea: use what ships with the dependencies. `karate` is Zachary's (1977) karate club from
networkx: 34 members, 78 friendships, labelled by the faction each joined when the club
split, the classic one-label-per-faction demo of Kipf & Welling (2017). `digits_knn` is a
larger graph built from a real data set: scikit-learn's 1,797 handwritten digits as nodes
(64 pixel features) joined to their k nearest neighbours in pixel space, with only a few
labels per class, the graph-based semi-supervised setting of Zhu, Ghahramani & Lafferty (2003).
The digits graph is constructed, not observed, and says so in its description.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from deepstrata.data.graph_data import GraphData
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

KARATE_LEADERS = (0, 33)  # Mr. Hi, the instructor, and John A., the club's officer


def undirected_edges(pairs: np.ndarray) -> torch.Tensor:
    """(E, 2) node pairs -> (2, E') int64 edge list with both directions, without duplicates or self loops."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    both = np.concatenate([pairs, pairs[:, ::-1]], axis=0)
    both = np.unique(both, axis=0)
    return torch.from_numpy(both.T.copy()).long()


@register_dataset("karate")
def karate(*, labelled: Literal["leaders", "random"] = "leaders") -> GraphData:
    """Zachary's karate club (networkx): 34 members, 78 friendships, 2 factions; one label per faction.

    labelled: "leaders" labels the instructor (node 0) and the officer (node 33), as in Kipf &
    Welling's demo; "random" labels one randomly chosen member of each faction (from the seed).
    Node features are one-hot identities, so everything the model learns comes from the graph.
    """
    import networkx as nx

    graph = nx.karate_club_graph()
    nodes = sorted(graph.nodes)
    factions = ["Mr. Hi", "Officer"]
    y = torch.tensor([factions.index(graph.nodes[i]["club"]) for i in nodes], dtype=torch.int64)
    edges = undirected_edges(np.array(list(graph.edges), dtype=np.int64))
    return GraphData(
        x=torch.eye(len(nodes)),
        edge_index=edges,
        y=y,
        class_names=factions,
        train_nodes=list(KARATE_LEADERS) if labelled == "leaders" else None,
        labels_per_class=1 if labelled == "random" else None,
        description="Zachary's karate club via networkx.karate_club_graph; labels: the faction each member joined",
        input_spec={"raw": "one-hot node identity"},
    )


@register_dataset("digits_knn")
def digits_knn(*, k: int = 10, labels_per_class: int | None = 10) -> GraphData:
    """scikit-learn digits as a k-nearest-neighbour graph: 1,797 nodes, 64 features, 10 classes.

    Each image is joined to its k nearest neighbours in pixel space (symmetrised); only
    `labels_per_class` nodes per class are labelled for training (None: a stratified fraction).
    """
    from sklearn.datasets import load_digits
    from sklearn.neighbors import NearestNeighbors

    if k < 1:
        raise DataError(f"digits_knn: k must be at least 1, got {k}")
    bunch = load_digits()
    features = bunch.data.astype(np.float32) / 16.0  # (1797, 64) in [0, 1]
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    rows = np.repeat(np.arange(len(features)), k)
    pairs = np.stack([rows, neighbours[:, 1:].reshape(-1)], axis=1)  # column 0 is the point itself
    return GraphData(
        x=torch.from_numpy(features),
        edge_index=undirected_edges(pairs),
        y=torch.tensor(bunch.target, dtype=torch.int64),
        class_names=[str(c) for c in bunch.target_names],
        labels_per_class=labels_per_class,
        description=f"sklearn digits joined to their {k} nearest neighbours in pixel space (a constructed graph)",
        input_spec={"scale": 1 / 16.0, "raw": "grey level 0..16"},
    )
