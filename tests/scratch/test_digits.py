"""The scratch MLP learns digits, and matches PyTorch step for step from the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.scratch.digits import train_scratch_and_torch
from deepstrata.scratch.nn import MLP, SGD, Linear


@pytest.mark.e2e
def test_scratch_mlp_reaches_96_percent_and_equals_torch():
    scratch, torch_run = train_scratch_and_torch(hidden=(64,), epochs=10, batch_size=32, lr=0.1, momentum=0.9)
    assert scratch.test_accuracy >= 0.96, scratch.test_accuracy
    assert scratch.test_accuracy == torch_run.test_accuracy
    np.testing.assert_allclose(scratch.losses, torch_run.losses, rtol=1e-8)
    assert scratch.losses[-1] < 0.2 * scratch.losses[0]


def test_sgd_momentum_matches_torch_rule():
    import torch

    w0 = np.array([1.0, -2.0])
    lin = Linear(2, 1, rng=np.random.default_rng(0))
    lin.weight.data = w0.reshape(2, 1).copy()
    opt = SGD([lin.weight], lr=0.1, momentum=0.9, weight_decay=0.01)
    tw = torch.tensor(w0.reshape(2, 1), requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(5):
        lin.weight.grad = 2 * lin.weight.data
        opt.step()
        tw.grad = 2 * tw.detach().clone()
        topt.step()
    np.testing.assert_allclose(lin.weight.data, tw.detach().numpy(), rtol=1e-12)


def test_module_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([4, 2], activation="swish")
    with pytest.raises(ValueError, match=r"expected \(N, 4\)"):
        from deepstrata.scratch import Tensor

        Linear(4, 2, rng=np.random.default_rng(0))(Tensor(np.ones((3, 5))))
