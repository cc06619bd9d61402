"""scikit-learn's handwritten digits: the flagship data set, shipped inside a dependency.

Problem: tests and first experiments need real images that load offline in milliseconds.
Idea: `sklearn.datasets.load_digits` ships 1,797 8x8 grey digits (values 0..16, 10 classes)
from the UCI "Optical Recognition of Handwritten Digits" set; scaled to [0, 1] they are
a small, honest image-classification task. Every image's ink spans the full 8 rows of its
frame (UCI: 32x32 bitmaps of on-pixels counted in 4x4 blocks), which is how the Predictor
fits a new drawing (`image_fit`).
"""

from __future__ import annotations

import torch

from deepstrata.data.base import TensorData
from deepstrata.data.input_check import reference_stats
from deepstrata.registry import register_dataset


# The ink's box scaled so its long side fills the 8x8 frame and centred: all 1,797 images have
# ink in rows 0 and 7, 97% are 5-8 columns wide, centred (mean column centre of mass 3.57).
DIGITS_FIT = {"frame": 8, "box": 8, "center": "box", "ink": "light"}
# reference_stats of the 1,797 images, for runs written before model.json kept them.
DIGITS_STATS = {"pixel_mean": 4.8842, "pixel_std": 6.0168, "image_mean": [0.1806, 0.4229], "mid_grey": [0.0156, 0.3594], "plain_border": [0.6071, 0.8929]}


@register_dataset("digits", image_fit=DIGITS_FIT, raw_stats=DIGITS_STATS)
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
        input_spec={
            "scale": 1 / 16.0,
            "mean": 0.0,
            "std": 1.0,
            "raw": "grey level 0..16, ink is high",
            "raw_max": 16.0,
            "image_fit": dict(DIGITS_FIT),
            "raw_stats": reference_stats(x, 16.0),  # over all 1,797 images: the test rows are split off later
        },
        description="UCI optical handwritten digits via sklearn.datasets.load_digits",
    )
