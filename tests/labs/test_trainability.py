"""The trainability lab's own measurements show the textbook facts about depth."""

from __future__ import annotations

import pytest
import torch

from deepstrata.labs.deep_mlp import DeepMLP
from deepstrata.labs.trainability import measure_cell


def test_deep_sigmoid_with_naive_init_has_vanishing_first_layer_gradients():
    cell = measure_cell(depth=10, activation="sigmoid", init="naive", variant="plain", steps=0, width=32)
    g = cell.grad_norms_init
    assert g[0] < 1e-4 * g[-2], g  # first hidden layer vs last hidden layer: >= 4 orders of magnitude
    assert all(a < b for a, b in zip(g[:-2], g[1:-1]))  # shrinking monotonically towards the input


@pytest.mark.parametrize("activation,init,variant", [("relu", "he", "plain"), ("sigmoid", "naive", "residual"), ("tanh", "xavier", "residual")])
def test_he_relu_and_residual_keep_gradients_within_a_small_factor(activation, init, variant):
    cell = measure_cell(depth=10, activation=activation, init=init, variant=variant, steps=0, width=32)
    g = cell.grad_norms_init[:-1]  # hidden layers, first to last
    assert max(g) / min(g) < 10, g


@pytest.mark.e2e
def test_deep_plain_network_trains_markedly_worse_than_residual():
    kw = dict(depth=10, activation="sigmoid", init="naive", steps=100, width=32, lr=0.1, snapshots=2)
    plain = measure_cell(variant="plain", **kw)
    residual = measure_cell(variant="residual", **kw)
    assert residual.test_accuracy > plain.test_accuracy + 0.4, (plain.test_accuracy, residual.test_accuracy)
    assert len(residual.grad_norms_during) == 2 and len(residual.grad_norms_during[0]) == 11


def test_deep_mlp_interface_and_errors():
    m = DeepMLP(in_features=64, num_classes=10, depth=3, width=16, variant="batch")
    assert m(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    with pytest.raises(ValueError, match=r"DeepMLP.linears\[0\] expected \(N, 64\)"):
        m(torch.zeros(4, 10))
    with pytest.raises(ValueError, match="unknown variant"):
        DeepMLP(in_features=4, num_classes=2, depth=2, variant="dense")
