"""Binarised MNIST: grey training images, a test set binarised once from a fixed seed."""

from __future__ import annotations

import torch

from deepstrata.models.generative import dynamic_binarize
from tests.conftest import requires_shared_data


@requires_shared_data("mnist")
def test_test_set_is_binary_and_fixed_by_its_seed_train_stays_grey() -> None:
    from deepstrata.data.binarized_mnist import binarized_mnist

    a, b, c = binarized_mnist(limit=100), binarized_mnist(limit=100), binarized_mnist(limit=100, test_seed=1)
    assert set(a.test_x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a.test_x, b.test_x) and not torch.equal(a.test_x, c.test_x)
    assert len(a.x.unique()) > 2  # grey levels, binarised dynamically by the models
    assert abs(float(a.test_x.mean()) - 0.1325) < 0.01  # MNIST's mean ink, preserved in expectation


def test_dynamic_binarisation_samples_grey_and_keeps_binary() -> None:
    torch.manual_seed(0)
    grey = torch.full((2000, 4), 0.25)
    out = dynamic_binarize(grey)
    assert set(out.unique().tolist()) == {0.0, 1.0} and abs(float(out.mean()) - 0.25) < 0.02
    binary = torch.bernoulli(torch.full((5, 4), 0.5))
    assert dynamic_binarize(binary) is binary
