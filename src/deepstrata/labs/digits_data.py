"""The digits split every lab trains on, taken from the registered `digits` dataset.

Problem: lab results are only comparable if every cell of a sweep sees exactly the same
training and test examples. Idea: build the data through `deepstrata.data.base.build_data`
once per seed (stratified, deterministic) and hand out whole tensors, since digits fits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch.utils.data import Subset, TensorDataset


@dataclass(frozen=True)
class LabData:
    """Train and test tensors: x (N, 1, 8, 8) in [0, 1], y (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@lru_cache(maxsize=4)
def digits_lab_data(seed: int = 0, test_fraction: float = 0.25) -> LabData:
    from deepstrata.data.base import build_data

    bundle = build_data("digits", seed=seed, val_fraction=0.0, test_fraction=test_fraction)

    def stack(ds):  # a Subset of a TensorDataset -> two tensors, by fancy indexing
        if isinstance(ds, Subset) and isinstance(ds.dataset, TensorDataset):
            x, y = ds.dataset.tensors
            return x[ds.indices], y[ds.indices]
        xs, ys = zip(*[ds[i] for i in range(len(ds))])
        return torch.stack(xs), torch.stack(ys)

    x_tr, y_tr = stack(bundle.train)
    x_te, y_te = stack(bundle.test)
    return LabData(x_tr, y_tr, x_te, y_te)
