"""Edge lists: the sparse form graph layers compute on, checked, with self loops and softmax.

Problem: a dense N x N adjacency costs N^2 memory although real graphs have a few edges per
node, and a malformed edge list (wrong shape, a node index past the end) fails deep inside
a scatter with an unreadable message.
Idea: keep a graph as `edge_index`, a (2, E) tensor of (source, target) node indices as
torch_geometric does (Fey & Lenssen 2019, "Fast Graph Representation Learning with PyTorch
Geometric"); check it once at the layer boundary, and express message passing with gathers
and `index_add_` over the edges, so cost grows with E, not N^2.
"""

from __future__ import annotations

import torch


def check_graph(layer: str, x: torch.Tensor, edge_index: torch.Tensor, in_features: int) -> int:
    """Check node features (N, F) or (B, N, F) against an edge list (2, E); return N.

    The optional leading B holds several signals on the same graph (node dimension -2, as in
    torch_geometric).
    """
    if x.dim() not in (2, 3) or x.shape[-1] != in_features:
        raise ValueError(f"{layer} expected node features (N, {in_features}) or (B, N, {in_features}), got {tuple(x.shape)}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{layer} expected edge_index (2, E) of (source, target) node indices, got {tuple(edge_index.shape)}")
    if edge_index.dtype != torch.int64:
        raise ValueError(f"{layer} expected edge_index of dtype int64, got {edge_index.dtype}")
    num_nodes = x.shape[-2]
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(
            f"{layer}: edge_index refers to node {int(edge_index.max())} (or a negative index) but the node "
            f"features {tuple(x.shape)} hold only {num_nodes} nodes"
        )
    return num_nodes


def add_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Drop existing self loops, then append exactly one (i, i) per node: (2, E' + N).

    A node's own features then take part in its update (Kipf & Welling's A + I), once.
    """
    keep = edge_index[0] != edge_index[1]
    loops = torch.arange(num_nodes, device=edge_index.device).expand(2, num_nodes)
    return torch.cat([edge_index[:, keep], loops], dim=1)


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of edge scores over the edges that share a target node.

    scores: (..., E, H) with edges on dimension -2; index: (E,) target node of each edge.
    The maximum per target is subtracted first so exp never overflows.
    """
    shape = (*scores.shape[:-2], num_nodes, scores.shape[-1])
    expanded = index.view(*([1] * (scores.dim() - 2)), -1, 1).expand_as(scores)
    peak = torch.full(shape, float("-inf"), dtype=scores.dtype, device=scores.device)
    peak = peak.scatter_reduce(-2, expanded, scores, reduce="amax", include_self=True)
    exp = (scores - peak.gather(-2, expanded)).exp()
    total = torch.zeros(shape, dtype=scores.dtype, device=scores.device).index_add(-2, index, exp)
    return exp / total.gather(-2, expanded).clamp_min(torch.finfo(scores.dtype).tiny)
