"""Binarised MNIST, the standard benchmark for likelihoods of discrete images.

Problem: likelihoods of grey-level MNIST under a Bernoulli model are not likelihoods at all,
and a test set binarised differently in every run gives numbers nobody can compare.
Idea: training images stay grey and are read as Bernoulli probabilities, so models sample a
fresh binarisation every time they see an image (dynamic binarisation,
`models.generative.dynamic_binarize`); the official test set is binarised once, from a fixed
seed, so every run is scored on the same binary images. (Salakhutdinov & Murray 2008.)
"""

from __future__ import annotations

import torch

from deepstrata.data.base import TensorData
from deepstrata.data.mnist import load_idx_folder
from deepstrata.registry import register_dataset


@register_dataset("binarized_mnist")
def binarized_mnist(*, root: str | None = None, limit: int | None = None, test_seed: int = 0) -> TensorData:
    """MNIST for likelihoods: grey train images (binarised dynamically), test binarised once from test_seed."""
    data = load_idx_folder("mnist", root, [str(i) for i in range(10)], limit=limit)
    gen = torch.Generator().manual_seed(test_seed)
    assert data.test_x is not None  # load_idx_folder always reads the official test files
    data.test_x = torch.bernoulli(data.test_x, generator=gen)
    data.description += f"; test binarised once with seed {test_seed}, train binarised dynamically"
    return data
