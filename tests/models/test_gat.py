"""GAT equals torch_geometric's GATConv with copied weights; attention is a softmax over neighbours."""

from __future__ import annotations

import pytest
import torch

from deepstrata.models.gat import GATConv, gat
from deepstrata.nn.graph import segment_softmax


def random_graph(n: int = 12, e: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, e), generator=gen)
    edges = edges[:, edges[0] != edges[1]]  # no self loops: the layers add exactly one per node
    return torch.unique(torch.cat([edges, edges.flip(0)], dim=1), dim=1)


@pytest.mark.parametrize(("heads", "concat"), [(1, True), (3, True), (4, False)])
def test_gatconv_equals_torch_geometric(heads: int, concat: bool) -> None:
    from torch_geometric.nn import GATConv as PygGATConv

    torch.manual_seed(heads)
    edges, x = random_graph(seed=heads), torch.randn(12, 6)
    ref = PygGATConv(6, 5, heads=heads, concat=concat).eval()
    with torch.no_grad():
        ref.bias.normal_()
    ours = GATConv(6, 5, heads=heads, concat=concat).eval()
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(x, edges), ref(x, edges))
    # The attention weights themselves, edge by edge (torch_geometric puts self loops last too).
    _, (ref_edges, ref_alpha) = ref(x, edges, return_attention_weights=True)
    ours(x, edges)
    order = torch.argsort(ref_edges[1] * 100 + ref_edges[0])
    from deepstrata.nn.graph import add_self_loops

    our_edges = add_self_loops(edges, 12)
    our_order = torch.argsort(our_edges[1] * 100 + our_edges[0])
    torch.testing.assert_close(ours.last_attention[our_order], ref_alpha[order])


def test_gatconv_gradients_equal_torch_geometric() -> None:
    from torch_geometric.nn import GATConv as PygGATConv

    torch.manual_seed(0)
    edges = random_graph()
    ref, ours = PygGATConv(6, 4, heads=2), GATConv(6, 4, heads=2)
    ours.load_state_dict(ref.state_dict())
    x1 = torch.randn(12, 6, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1, edges).square().sum().backward()
    ref(x2, edges).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(ours.att_src.grad, ref.att_src.grad)


def test_batched_signals_equal_one_at_a_time() -> None:
    torch.manual_seed(0)
    conv, edges = GATConv(6, 4, heads=2).eval(), random_graph()
    xb = torch.randn(3, 12, 6)
    torch.testing.assert_close(conv(xb, edges), torch.stack([conv(x, edges) for x in xb]))


def test_segment_softmax_sums_to_one_per_target() -> None:
    gen = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    scores = torch.randn(6, 2, generator=gen) * 50  # large scores: the max subtraction keeps it finite
    alpha = segment_softmax(scores, index, 3)
    sums = torch.zeros(3, 2).index_add_(0, index, alpha)
    torch.testing.assert_close(sums, torch.ones(3, 2))
    torch.testing.assert_close(alpha[3:, 0], torch.softmax(scores[3:, 0], 0))


def test_gat_model_output_and_attention() -> None:
    torch.manual_seed(0)
    model = gat(in_features=6, num_classes=3, hidden=4, heads=2).eval()
    edges = random_graph()
    assert model(torch.randn(12, 6), edges).shape == (12, 3)
    first, last = model.attention()
    assert first.shape == (edges.shape[1] + 12, 2) and last.shape == (edges.shape[1] + 12, 1)


def test_shape_error_names_layer_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"GAT.convs.0 expected node features \(N, 6\).*got \(12, 5\)"):
        gat(in_features=6, num_classes=3)(torch.randn(12, 5), random_graph())
