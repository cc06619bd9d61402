"""scikit-learn's handwritten digits: the flagship data set, shipped inside a dependency.

Problem: tests and first experiments need real images that load offline in milliseconds.
Idea: `sklearn.datasets.load_digits` ships 1,797 8x8 grey digits (values 0..16, 10 classes)
from the UCI "Optical Recognition of Handwritten Digits" set; scaled to [0, 1] they are
a small, honest image-classification task.
"""

from __future__ import annotations

import torch

from deepstrata.data.base import TensorData
from deepstrata.registry import register_dataset


@register_dataset("digits")
def digits() -> TensorData:
    """Handwritten digits from scikit-learn: 1,797 grey 8x8 images in 10 classes (offline)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return TensorData(
        x=x,
        y=y,
        task="classification",
        class_names=[str(c) for c in bunch.target_names],
        input_spec={"scale": 1 / 16.0, "mean": 0.0, "std": 1.0, "raw": "grey level 0..16, ink is high", "raw_max": 16.0},
        description="UCI optical handwritten digits via sklearn.datasets.load_digits",
    )
