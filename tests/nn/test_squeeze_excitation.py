"""Squeeze-and-excitation equals its formula and really gates channels by global context."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepstrata.nn.squeeze_excitation import SqueezeExcitation


def test_equals_the_formula_of_the_paper() -> None:
    torch.manual_seed(0)
    se = SqueezeExcitation(6, 2)
    x = torch.randn(3, 6, 5, 5)
    s = x.mean(dim=(2, 3))  # (N, C) squeeze
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    gate = torch.sigmoid(F.linear(F.silu(F.linear(s, w1, b1)), w2, b2))  # (N, C) excitation
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_gates_depend_on_the_whole_image_and_lie_in_the_unit_interval() -> None:
    torch.manual_seed(0)
    se = SqueezeExcitation(4, 2)
    x = torch.randn(1, 4, 6, 6)
    y = x.clone()
    y[..., 5, 5] += 10.0  # change one far-away pixel
    g1, g2 = se.gate(x), se.gate(y)
    assert ((g1 > 0) & (g1 < 1)).all()
    assert not torch.allclose(g1, g2)  # the gate of every channel saw the change: global context


def test_shape_error_names_the_layer_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"SqueezeExcitation expected \(N, 4, \*, \*\) input, got \(2, 3, 5, 5\)"):
        SqueezeExcitation(4, 2)(torch.randn(2, 3, 5, 5))
