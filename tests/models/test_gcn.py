"""GCN equals torch_geometric's GCNConv with copied weights; the sparse propagation is D^-1/2 (A+I) D^-1/2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.models.gcn import GCNConv, gcn, normalized_adjacency
from deepstrata.registry import MODELS
from deepstrata.run.artifact import load_model, save_model


def random_graph(n: int = 12, e: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, e), generator=gen)
    edges = edges[:, edges[0] != edges[1]]  # no self loops: the layers add exactly one per node
    edges = torch.cat([edges, edges.flip(0)], dim=1)  # undirected
    return torch.unique(edges, dim=1)


def test_gcnconv_equals_torch_geometric() -> None:
    from torch_geometric.nn import GCNConv as PygGCNConv

    torch.manual_seed(0)
    edges = random_graph()
    x = torch.randn(12, 5)
    ours, ref = GCNConv(5, 7), PygGCNConv(5, 7)
    with torch.no_grad():
        ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())  # identical parameter names and shapes
    torch.testing.assert_close(ours(x, edges), ref(x, edges))
    # Several signals on the same graph (B, N, F), as torch_geometric's node_dim=-2 allows.
    xb = torch.randn(3, 12, 5)
    torch.testing.assert_close(ours(xb, edges), ref(xb, edges))


def test_gcnconv_gradients_equal_torch_geometric() -> None:
    from torch_geometric.nn import GCNConv as PygGCNConv

    torch.manual_seed(1)
    edges = random_graph(seed=1)
    ours, ref = GCNConv(5, 3), PygGCNConv(5, 3)
    ours.load_state_dict(ref.state_dict())
    x1 = torch.randn(12, 5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1, edges).square().sum().backward()
    ref(x2, edges).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.lin.weight.grad, ref.lin.weight.grad)


def test_normalized_adjacency_is_the_closed_form() -> None:
    edges = random_graph(n=6, e=10, seed=2)
    a = torch.zeros(6, 6)
    a[edges[1], edges[0]] = 1.0
    a_hat = a + torch.eye(6)
    d = a_hat.sum(1).pow(-0.5)
    torch.testing.assert_close(normalized_adjacency(edges, 6).to_dense(), d[:, None] * a_hat * d[None, :])
    assert normalized_adjacency(edges, 6).is_sparse


def test_existing_self_loops_are_counted_once() -> None:
    edges = torch.tensor([[0, 1, 1], [1, 0, 1]])  # node 1 already has a self loop
    dense = normalized_adjacency(edges, 2).to_dense()
    torch.testing.assert_close(dense, torch.full((2, 2), 0.5))


def test_gcn_model_stacks_layers_like_torch_geometric() -> None:
    from torch_geometric.nn import GCNConv as PygGCNConv

    torch.manual_seed(0)
    model = gcn(in_features=5, num_classes=3, hidden=[8]).eval()
    refs = [PygGCNConv(5, 8), PygGCNConv(8, 3)]
    for conv, ref in zip(model.convs, refs):
        ref.load_state_dict(conv.state_dict())
    edges, x = random_graph(), torch.randn(12, 5)
    expected = refs[1](torch.relu(refs[0](x, edges)), edges)
    torch.testing.assert_close(model(x, edges), expected)


@pytest.mark.parametrize(
    ("x_shape", "edges", "match"),
    [
        ((12, 4), random_graph(), r"GCNConv expected node features \(N, 5\) or \(B, N, 5\), got \(12, 4\)"),
        ((12, 5), torch.zeros(3, 4, dtype=torch.long), r"expected edge_index \(2, E\).*got \(3, 4\)"),
        ((3, 5), random_graph(), "refers to node 11"),
        ((12, 5), random_graph().float(), "dtype int64"),
    ],
)
def test_shape_errors_name_layer_and_shapes(x_shape, edges, match) -> None:
    with pytest.raises(ValueError, match=match):
        GCNConv(5, 2)(torch.randn(*x_shape), edges)


@pytest.mark.parametrize("name", ["gcn", "gat"])
def test_graph_models_contract(name: str, tmp_path: Path) -> None:
    """The registry contract (forward/backward finite, safetensors round trip) with the example's edges."""
    example = MODELS.meta(name)["example"]
    torch.manual_seed(0)
    model = MODELS.get(name)(**example["kwargs"]).eval()
    x = torch.rand(2, *example["input_shape"])
    edges = torch.tensor(example["edge_index"])
    out = model(x, edges)
    assert out.shape == (2, example["input_shape"][0], example["kwargs"]["num_classes"])
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    save_model(model, tmp_path, {"architecture": name, "kwargs": example["kwargs"]})
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, edges), model(x, edges), rtol=0, atol=0)
