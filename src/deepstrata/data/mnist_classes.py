"""MNIST restricted to some digits, optionally with few labels per class: a transfer-learning testbed.

Problem: measuring transfer needs two related tasks, one with plenty of labels to pretrain
on and one with few labels to adapt to, on real data that loads offline.
Idea: split MNIST by digit: `mnist_classes(classes=[0..4])` for pretraining and
`mnist_classes(classes=[5..9], per_class=50)` for the target task; labels are renumbered
0..K-1 in the order given, the official test images of those digits stay the test set,
and the labelled examples are the first `per_class` of each digit in file order (fixed, so
every strategy sees the same images). (The 0-4 -> 5-9 split follows Yosinski et al. 2014's
split-dataset transfer experiments.)
"""

from __future__ import annotations

import torch

from deepstrata.data.base import TensorData
from deepstrata.data.mnist import MNIST_FIT, MNIST_STATS, load_idx_folder
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset


@register_dataset("mnist_classes", image_fit=MNIST_FIT, raw_stats=MNIST_STATS)
def mnist_classes(*, classes: list[int] = [0, 1, 2, 3, 4], per_class: int | None = None, root: str | None = None) -> TensorData:  # noqa: B006
    """MNIST with only `classes` (relabelled 0..K-1) and, optionally, the first `per_class` training images of each."""
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
        raise DataError(f"mnist_classes: classes must be distinct digits 0..9, got {classes}")
    if per_class is not None and per_class < 1:
        raise DataError(f"mnist_classes: per_class must be at least 1, got {per_class}")
    full = load_idx_folder("mnist", root, [str(i) for i in range(10)], image_fit=MNIST_FIT)
    lookup = torch.full((10,), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))

    def select(x: torch.Tensor, y: torch.Tensor, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.zeros(len(y), dtype=torch.bool)
        for c in classes:
            idx = (y == c).nonzero().flatten()
            keep[idx if limit is None else idx[:limit]] = True
        return x[keep], lookup[y[keep]]

    x, y = select(full.x, full.y, per_class)
    test_x, test_y = select(full.test_x, full.test_y, None)
    return TensorData(
        x=x,
        y=y,
        test_x=test_x,
        test_y=test_y,
        task="classification",
        class_names=[str(c) for c in classes],
        input_spec=full.input_spec,  # raw_stats of all 60,000 training digits: the bounds of any subset lie inside
        description=f"MNIST digits {classes}" + (f", first {per_class} training images per digit" if per_class else ""),
    )
