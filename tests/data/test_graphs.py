"""Graph datasets: the karate club and the digits k-NN graph, and how a graph is split into node masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstrata.data.base import build_data
from deepstrata.data.graph_data import GraphData, NodeSplit
from deepstrata.data.graphs import KARATE_LEADERS, digits_knn, karate
from deepstrata.errors import DataError


def masks(bundle) -> dict[str, torch.Tensor]:
    return {name: split.graph["mask"] for name, split in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test)) if split is not None}


def test_karate_is_zacharys_club() -> None:
    g = karate()
    assert g.x.shape == (34, 34) and torch.equal(g.x, torch.eye(34))
    assert g.edge_index.shape == (2, 156)  # 78 friendships, both directions
    assert torch.bincount(g.y).tolist() == [17, 17]  # networkx's faction labels
    assert g.y[0] == 0 and g.y[33] == 1  # Mr. Hi leads faction 0, the officer faction 1
    edges = set(map(tuple, g.edge_index.T.tolist()))
    assert all((b, a) in edges for a, b in edges) and not any(a == b for a, b in edges)


def test_karate_split_labels_the_two_leaders_and_tests_everyone_else() -> None:
    bundle = build_data("karate", seed=3, val_fraction=0.0, test_fraction=0.2)
    m = masks(bundle)
    assert bundle.val is None
    assert m["train"].nonzero().flatten().tolist() == list(KARATE_LEADERS)
    assert torch.equal(m["test"], ~m["train"]) and int(m["test"].sum()) == 32
    assert bundle.task == "node_classification" and bundle.model_defaults()["in_features"] == 34


def test_random_labelled_nodes_are_one_per_faction_and_follow_the_seed() -> None:
    picks = [masks(build_data("karate", seed=s, val_fraction=0.0, test_fraction=0.2, dataset_kwargs={"labelled": "random"}))["train"] for s in (0, 0, 1)]
    y = karate().y
    assert torch.bincount(y[picks[0]]).tolist() == [1, 1]
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])


def test_digits_knn_graph() -> None:
    g = digits_knn(k=5, labels_per_class=3)
    n = 1797
    assert g.x.shape == (n, 64) and float(g.x.max()) <= 1.0
    degree = torch.bincount(g.edge_index[1], minlength=n)
    assert int(degree.min()) >= 5  # every node keeps its 5 nearest neighbours (symmetrised, so maybe more)
    edges = set(map(tuple, g.edge_index.T.tolist()))
    assert all((b, a) in edges for a, b in edges)
    # Neighbours in pixel space mostly share the digit: the graph carries label information.
    same = (g.y[g.edge_index[0]] == g.y[g.edge_index[1]]).float().mean()
    assert same > 0.9


def test_digits_knn_split_is_k_per_class_disjoint_and_complete() -> None:
    bundle = build_data("digits_knn", seed=0, val_fraction=0.1, test_fraction=0.2, dataset_kwargs={"labels_per_class": 4})
    m = masks(bundle)
    y = bundle.train.graph["y"]
    assert torch.bincount(y[m["train"]]).tolist() == [4] * 10
    total = m["train"].int() + m["val"].int() + m["test"].int()
    assert torch.equal(total, torch.ones_like(total))  # each node in exactly one split
    assert bundle.split["train_size"] == 40 and bundle.split["val_size"] == round(0.1 * (1797 - 40))


def test_stratified_fraction_split_without_label_budget() -> None:
    bundle = build_data("digits_knn", seed=0, val_fraction=0.1, test_fraction=0.2, dataset_kwargs={"labels_per_class": None})
    assert bundle.split["labelled"] == "stratified fraction"
    assert abs(bundle.split["test_size"] - 0.2 * 1797) < 2


def test_node_split_is_one_whole_graph() -> None:
    split = NodeSplit(torch.zeros(3, 2), torch.zeros(2, 0, dtype=torch.long), torch.zeros(3, dtype=torch.long), torch.tensor([True, False, True]))
    assert len(split) == 1 and split.num_nodes == 2
    with pytest.raises(IndexError):
        split[1]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"edge_index": torch.tensor([[0, 5], [1, 0]])}, "outside 0..2"),
        ({"y": torch.tensor([0, 1, 2])}, "outside the class range"),
        ({"x": torch.zeros(3)}, r"must be \(N, F\)"),
    ],
)
def test_bad_graphs_fail_with_data_errors(change, match) -> None:
    base = {"x": torch.zeros(3, 2), "edge_index": torch.tensor([[0, 1], [1, 0]]), "y": torch.tensor([0, 1, 0]), "class_names": ["a", "b"]}
    with pytest.raises(DataError, match=match):
        GraphData(**{**base, **change}).validate("toy")


def test_too_many_labels_per_class_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot label 20"):
        karate().__class__(**{**karate().__dict__, "train_nodes": None, "labels_per_class": 20}).split_nodes(seed=0, val_fraction=0.0, test_fraction=0.0)


def test_digits_knn_rejects_k_below_one() -> None:
    with pytest.raises(DataError, match="k must be at least 1"):
        digits_knn(k=0)


def test_undirected_edges_drop_self_loops_and_duplicates() -> None:
    from deepstrata.data.graphs import undirected_edges

    edges = undirected_edges(np.array([[0, 1], [1, 0], [2, 2], [1, 2]]))
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
