"""CIFAR-10 and CIFAR-100 from their "python version" batch files, read without running pickle code.

Problem: CIFAR ships as pickled dicts (Krizhevsky 2009, "Learning Multiple Layers of Features
from Tiny Images"); unpickling a file someone sent can execute arbitrary code.
Idea: read each batch with the restricted unpickler (numpy arrays, lists, dicts, bytes,
strings, numbers only), check every array against the documented layout (N rows of
3 x 32 x 32 = 3,072 uint8 values, red plane then green then blue) and every label against
the class list, and keep the official 10,000-image test batch as the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.data.safe_pickle import load_restricted
from deepstrata.data.source import resolve_source
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
PIXELS = 3 * 32 * 32


def _batch(path: Path) -> dict[str, Any]:
    """One batch as a dict with str keys (Python-2 pickles give bytes keys)."""
    raw = load_restricted(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a pickled dict (a CIFAR python batch), got {type(raw).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in raw.items()}


def _images_labels(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _batch(path)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(f"{path}: no '{key}' entry (found {', '.join(sorted(batch))}); is this a CIFAR python batch?")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), got {type(data).__name__} {shape}")
    labels = np.asarray(batch[label_key])
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: '{label_key}' must hold one integer label per image ({len(data)}), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.max()) if labels.max() >= num_classes else int(labels.min())
        raise DataError(f"{path}: label {bad} is outside the class range 0..{num_classes - 1}")
    return data, labels.astype(np.int64)


def _names(path: Path, key: str, expected: int) -> list[str]:
    """Class names from the meta file; numbered names when it is absent."""
    if not path.is_file():
        return [str(i) for i in range(expected)]
    names = _batch(path).get(key)
    if not isinstance(names, list) or len(names) != expected:
        raise DataError(f"{path}: '{key}' must list {expected} class names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _to_tensor(rows: np.ndarray) -> torch.Tensor:
    # (N, 3072) uint8, planes R|G|B of 32x32 row-major -> (N, 3, 32, 32) float in [0, 1]
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32).copy()).float().div_(255.0)


def _tensor_data(name: str, folder: Path, train: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray], classes: list[str], limit: int | None) -> TensorData:
    x = np.concatenate([d for d, _ in train])[:limit]
    y = np.concatenate([lab for _, lab in train])[:limit]
    return TensorData(
        x=_to_tensor(x),
        y=torch.from_numpy(y),
        test_x=_to_tensor(test[0]),
        test_y=torch.from_numpy(test[1]),
        task="classification",
        class_names=classes,
        input_spec={"scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw": "RGB 0..255", "raw_max": 255.0},
        description=f"{name} python batches from {folder}",
    )


def _need(folder: Path, stem: str, layout: str) -> Path:
    path = folder / stem
    if not path.is_file():
        raise DataError(f"{folder}: missing {stem}; {layout}")
    return path


@register_dataset("cifar10")
def cifar10(*, root: str | None = None, limit: int | None = None) -> TensorData:
    """CIFAR-10 python batches (data_batch_1..5, test_batch): 50,000 + 10,000 colour 32x32 images, 10 classes."""
    folder = resolve_source("cifar10", root=root, what="the CIFAR-10 python batches (cifar-10-batches-py/)")
    layout = "a CIFAR-10 folder (cifar-10-batches-py) holds data_batch_1..data_batch_5, test_batch and batches.meta"
    train = [_images_labels(_need(folder, stem, layout), "labels", 10) for stem in CIFAR10_TRAIN]
    test = _images_labels(_need(folder, "test_batch", layout), "labels", 10)
    classes = _names(folder / "batches.meta", "label_names", 10)
    return _tensor_data("cifar10", folder, train, test, classes, limit)


@register_dataset("cifar100")
def cifar100(*, root: str | None = None, labels: Literal["fine", "coarse"] = "fine", limit: int | None = None) -> TensorData:
    """CIFAR-100 python files (train, test, meta): 50,000 + 10,000 colour 32x32 images, 100 fine or 20 coarse classes."""
    folder = resolve_source("cifar100", root=root, what="the CIFAR-100 python files (cifar-100-python/)")
    layout = "a CIFAR-100 folder (cifar-100-python) holds train, test and meta"
    k = 100 if labels == "fine" else 20
    train = [_images_labels(_need(folder, "train", layout), f"{labels}_labels", k)]
    test = _images_labels(_need(folder, "test", layout), f"{labels}_labels", k)
    classes = _names(folder / "meta", f"{labels}_label_names", k)
    return _tensor_data("cifar100", folder, train, test, classes, limit)
