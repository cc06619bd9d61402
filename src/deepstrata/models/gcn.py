"""Graph convolutional network (GCN): node classification from a few labels and the graph.

Problem: in a graph, a node's label depends on its neighbours, and when only a handful of
nodes are labelled, a classifier that looks at each node alone has almost nothing to learn from.
Idea: each layer averages transformed neighbour features with the symmetric normalisation
D^-1/2 (A + I) D^-1/2 (self loops keep the node's own features; the normalisation keeps the
scale independent of degree), so k layers mix information from k hops; the adjacency is a
sparse matrix, so the cost is linear in the number of edges. (Kipf & Welling 2017,
"Semi-Supervised Classification with Graph Convolutional Networks".)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.nn.graph import add_self_loops, check_graph
from deepstrata.registry import register_model


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The sparse (N, N) matrix D^-1/2 (A + I) D^-1/2, row = target node, column = source node.

    Degrees count incoming edges plus the self loop, as in torch_geometric's `gcn_norm`.
    """
    edges = add_self_loops(edge_index, num_nodes)
    source, target = edges
    degree = torch.zeros(num_nodes, dtype=dtype, device=edges.device).index_add_(0, target, torch.ones(target.shape[0], dtype=dtype, device=edges.device))
    inv_sqrt = degree.pow(-0.5)  # every node has its self loop, so degree >= 1
    values = inv_sqrt[source] * inv_sqrt[target]
    return torch.sparse_coo_tensor(torch.stack([target, source]), values, (num_nodes, num_nodes), check_invariants=False).coalesce()  # indices checked by check_graph


def propagate(adjacency: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Sparse (N, N) @ node features (N, F) or (B, N, F), batched over B."""
    if h.dim() == 2:
        return torch.sparse.mm(adjacency, h)
    batch, n, f = h.shape
    flat = h.transpose(0, 1).reshape(n, batch * f)  # (N, B * F)
    return torch.sparse.mm(adjacency, flat).reshape(n, batch, f).transpose(0, 1)


class GCNConv(nn.Module):
    """One graph convolution: H' = D^-1/2 (A + I) D^-1/2 H W + b.

    Parameter names and initialisation follow torch_geometric's GCNConv (`lin.weight`
    Glorot-uniform, `bias` zeros), so weights copy across one to one.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        bound = math.sqrt(6.0 / (in_features + out_features))  # Glorot & Bengio 2010
        nn.init.uniform_(self.lin.weight, -bound, bound)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, adjacency: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, in) or (B, N, in); edge_index: (2, E) -> (N, out) or (B, N, out).

        `adjacency` (from `normalized_adjacency`) may be passed to reuse it across layers.
        """
        n = check_graph("GCNConv", x, edge_index, self.in_features)
        if adjacency is None:
            adjacency = normalized_adjacency(edge_index, n, dtype=x.dtype)
        out = propagate(adjacency, self.lin(x))
        return out + self.bias if self.bias is not None else out


class GCN(nn.Module):
    """Stacked GCNConv layers with ReLU and dropout between them; the last one outputs logits."""

    def __init__(self, *, in_features: int, num_classes: int, hidden: tuple[int, ...] = (16,), dropout: float = 0.5):
        super().__init__()
        self.in_features = in_features
        widths = (in_features, *hidden, num_classes)
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """x: (N, in_features) node features; edge_index: (2, E) -> (N, num_classes) logits."""
        n = check_graph("GCN.convs.0", x, edge_index, self.in_features)
        adjacency = normalized_adjacency(edge_index, n, dtype=x.dtype)  # shared by every layer
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, edge_index, adjacency)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


EXAMPLE_EDGES = [[0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 0, 2], [1, 0, 2, 1, 3, 2, 4, 3, 0, 4, 2, 0]]


@register_model(
    "gcn",
    not_exportable="a graph's node and edge counts change with every input and its edge indices are checked as Python numbers; torch.export would fix both to the example graph",
    example={"input_shape": [5, 4], "edge_index": EXAMPLE_EDGES, "kwargs": {"in_features": 4, "num_classes": 3}},
)
def gcn(*, in_features: int, num_classes: int, hidden: list[int] = [16], dropout: float = 0.5) -> GCN:  # noqa: B006
    """Graph convolutional network (Kipf & Welling): forward(x (N, F), edge_index (2, E)) -> (N, K)."""
    return GCN(in_features=in_features, num_classes=num_classes, hidden=tuple(hidden), dropout=dropout)
