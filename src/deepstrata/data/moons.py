"""Two moons: a 2-D density with curved, disconnected mass, generated from a fixed seed.

Problem: a density model's failures (mass between the moons, a missed arc) are invisible in
a single likelihood number on images, and checks need data that loads offline in milliseconds.
Idea: scikit-learn's `make_moons` draws points on two interlocking half circles plus Gaussian
noise; from a fixed seed the set is the same everywhere, and a scatter plot of samples against
held-out points shows what the model learned. The moon (0 or 1) is the label.
"""

from __future__ import annotations

import torch

from deepstrata.data.base import TensorData
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset


@register_dataset("moons")
def moons(*, n_samples: int = 4000, noise: float = 0.05, seed: int = 0, standardize: bool = True) -> TensorData:
    """scikit-learn two moons: n_samples 2-D points (fixed seed), label = which moon."""
    from sklearn.datasets import make_moons

    if n_samples < 10:
        raise DataError(f"dataset 'moons': n_samples={n_samples} is too small; use at least 10")
    if noise < 0:
        raise DataError(f"dataset 'moons': noise={noise} must be >= 0")
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    x = torch.tensor(x, dtype=torch.float32)
    # Fixed affine standardisation (the moons' population mean and scale, not fitted on the
    # sample), so the scale is the same whatever n_samples is and no test data leaks.
    mean, std = (0.5, 0.25), (0.87, 0.5)
    if standardize:
        x = (x - torch.tensor(mean)) / torch.tensor(std)
    return TensorData(
        x=x,
        y=torch.tensor(y, dtype=torch.int64),
        task="classification",
        class_names=["upper moon", "lower moon"],
        input_spec={"scale": 1.0, "mean": list(mean) if standardize else 0.0, "std": list(std) if standardize else 1.0, "raw": "x, y coordinates"},
        description=f"sklearn make_moons(n_samples={n_samples}, noise={noise}, random_state={seed})",
    )
