"""Graph attention network (GAT): neighbours weighted by learned attention, not by degree.

Problem: a GCN weighs every neighbour by a fixed function of the node degrees, so an
informative neighbour counts no more than a noisy one.
Idea: each layer scores every edge j -> i with a shared attention vector,
e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), normalises the scores with a softmax over
i's neighbours (self included), and averages W h_j with those weights; several independent
heads are concatenated (hidden layers) or averaged (output layer). (Velickovic et al. 2018,
"Graph Attention Networks".)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.models.gcn import EXAMPLE_EDGES
from deepstrata.nn.graph import add_self_loops, check_graph, segment_softmax
from deepstrata.registry import register_model


class GATConv(nn.Module):
    """One multi-head graph attention layer over an edge list.

    Parameter names, shapes and initialisation follow torch_geometric's GATConv (`lin.weight`,
    `att_src`, `att_dst`, `bias`), so weights copy across one to one.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_features, self.out_features, self.heads, self.concat = in_features, out_features, heads, concat
        self.negative_slope, self.dropout = negative_slope, dropout
        self.lin = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_features))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_features))
        width = heads * out_features if concat else out_features
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        for weight, (fan_in, fan_out) in (
            (self.lin.weight, (in_features, heads * out_features)),
            (self.att_src, (heads, out_features)),
            (self.att_dst, (heads, out_features)),
        ):
            bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio 2010
            nn.init.uniform_(weight, -bound, bound)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """x: (N, in) or (B, N, in); edge_index: (2, E) -> (N, heads*out) if concat else (N, out)."""
        n = check_graph("GATConv", x, edge_index, self.in_features)
        edges = add_self_loops(edge_index, n)
        source, target = edges
        h = self.lin(x).unflatten(-1, (self.heads, self.out_features))  # (..., N, H, C)
        score_src = (h * self.att_src).sum(-1)  # (..., N, H)
        score_dst = (h * self.att_dst).sum(-1)
        scores = F.leaky_relu(score_src[..., source, :] + score_dst[..., target, :], self.negative_slope)  # (..., E, H)
        alpha = segment_softmax(scores, target, n)  # sums to 1 over each node's incoming edges
        self.last_attention = alpha.detach()
        alpha = F.dropout(alpha, self.dropout, self.training)
        messages = h[..., source, :, :] * alpha.unsqueeze(-1)  # (..., E, H, C)
        out = torch.zeros_like(h).index_add_(-3, target, messages)  # (..., N, H, C)
        out = out.flatten(-2) if self.concat else out.mean(dim=-2)
        return out + self.bias if self.bias is not None else out


class GAT(nn.Module):
    """Hidden GAT layers (heads concatenated, ELU) and an output GAT layer (heads averaged)."""

    def __init__(
        self,
        *,
        in_features: int,
        num_classes: int,
        hidden: int = 8,
        heads: int = 8,
        output_heads: int = 1,
        num_layers: int = 2,
        dropout: float = 0.6,
    ):
        super().__init__()
        self.in_features = in_features
        self.dropout = dropout
        layers = []
        width = in_features
        for _ in range(num_layers - 1):
            layers.append(GATConv(width, hidden, heads=heads, dropout=dropout))
            width = hidden * heads
        layers.append(GATConv(width, num_classes, heads=output_heads, concat=False, dropout=dropout))
        self.convs = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """x: (N, in_features) node features; edge_index: (2, E) -> (N, num_classes) logits."""
        check_graph("GAT.convs.0", x, edge_index, self.in_features)
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return x

    def attention(self) -> list[torch.Tensor]:
        """Each layer's attention weights from the last forward: (E + N, heads), self loops last."""
        return [conv.last_attention for conv in self.convs if conv.last_attention is not None]


@register_model(
    "gat",
    not_exportable="a graph's node and edge counts change with every input and its edge indices are checked as Python numbers; torch.export would fix both to the example graph",
    example={"input_shape": [5, 4], "edge_index": EXAMPLE_EDGES, "kwargs": {"in_features": 4, "num_classes": 3, "hidden": 4, "heads": 2}},
)
def gat(
    *,
    in_features: int,
    num_classes: int,
    hidden: int = 8,
    heads: int = 8,
    output_heads: int = 1,
    num_layers: int = 2,
    dropout: float = 0.6,
) -> GAT:
    """Graph attention network (Velickovic et al.): forward(x (N, F), edge_index (2, E)) -> (N, K)."""
    if num_layers < 1:
        raise ValueError(f"gat: num_layers must be at least 1, got {num_layers}")
    return GAT(
        in_features=in_features,
        num_classes=num_classes,
        hidden=hidden,
        heads=heads,
        output_heads=output_heads,
        num_layers=num_layers,
        dropout=dropout,
    )
