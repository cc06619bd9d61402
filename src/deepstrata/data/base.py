"""What a dataset gives the trainer, and how it is split.

Problem: every dataset arrives in its own shape (arrays, files, an official test set or none),
and a careless split leaks test data into training or changes between runs.
Idea: a registered dataset factory returns one `TensorData` (inputs, targets, optionally an
official test part, and a JSON description of its inputs); `build_data` splits it
deterministically from the seed, stratified for classification, and records the split so
`strata evaluate` rebuilds exactly the same test set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from deepstrata.errors import DataError

TaskKind = Literal["classification", "regression", "seq2seq", "forecasting", "language_modeling", "node_classification"]


@dataclass
class TensorData:
    """A whole dataset in memory, as a registered dataset factory returns it.

    x: (N, ...) float inputs, already scaled as the model sees them (see `input_spec`).
    y: (N,) int64 class indices for classification, (N, ...) float targets for regression.
    test_x/test_y: an official test part (MNIST's 10,000 images); when given, only the
        training part is split into train/validation.
    input_spec: JSON-able description of one input: {"shape": [...], "scale": s, "mean": m,
        "std": d, "raw": "what a raw value is"}; `deepstrata.load(...).predict` maps raw
        inputs to model inputs as ((raw * scale) - mean) / std; mean and std are numbers or
        per-feature (per-channel) lists.
    standardize: when True, `build_data` fits per-feature mean/std on the training rows only
        (x must be (N, F)), maps every split with them and folds them into `input_spec`.
    numeric_features: with `standardize`, how many LEADING columns are numeric and get
        standardised (None: all of them); the columns after them (categorical codes, see
        data/categorical_table.py) pass unchanged and get mean 0, std 1 in `input_spec`.
    model_defaults: model arguments this data determines (e.g. {"vocab_size": 40} for token
        ids), filled in when the recipe leaves them out, like `num_classes`.
    artifacts: text files a run must keep next to its model to use it later, by file name
        (e.g. {"tokenizer.json": "..."}); `train` writes them into the run directory.
    attributes / test_attributes: per-row descriptive columns that are not targets, by name,
        each an (N,) array of strings aligned with the rows of x (test_x): the groups a fairness
        audit compares (UCI Adult's "sex" and "race"). They may or may not also be features;
        `build_data` cuts them along the same split (`DataBundle.attributes`).
    """

    x: torch.Tensor
    y: torch.Tensor
    task: TaskKind
    class_names: list[str] | None = None
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    input_spec: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    standardize: bool = False
    numeric_features: int | None = None
    model_defaults: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    test_attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def validate(self, name: str) -> None:
        """Fail before training when the arrays do not describe one consistent dataset."""
        if len(self.x) != len(self.y):
            raise DataError(f"dataset '{name}': {len(self.x)} inputs but {len(self.y)} targets")
        for part, rows, columns in (("", len(self.x), self.attributes), ("test ", len(self.test_x) if self.test_x is not None else 0, self.test_attributes)):
            for column, values in columns.items():
                if len(values) != rows:
                    raise DataError(f"dataset '{name}': {part}attribute '{column}' has {len(values)} values for {rows} rows")
        if self.test_x is not None and set(self.attributes) != set(self.test_attributes):
            raise DataError(f"dataset '{name}': the attributes of the training part ({sorted(self.attributes)}) and the official test part ({sorted(self.test_attributes)}) differ")
        if len(self.x) == 0:
            raise DataError(f"dataset '{name}' is empty")
        if self.numeric_features is not None and not (self.x.dim() == 2 and 0 <= self.numeric_features <= self.x.shape[1]):
            raise DataError(f"dataset '{name}': numeric_features={self.numeric_features} does not fit inputs of shape {tuple(self.x.shape)}")
        if self.task == "classification":
            n = self.num_classes
            for part, y in (("train", self.y), ("test", self.test_y)):
                if y is None:
                    continue
                if y.dtype != torch.int64:
                    raise DataError(f"dataset '{name}': classification labels must be int64, got {y.dtype}")
                if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n):
                    raise DataError(
                        f"dataset '{name}': {part} label {int(y.max()) if int(y.max()) >= n else int(y.min())} "
                        f"is outside the class range 0..{n - 1}"
                    )

    @property
    def num_classes(self) -> int | None:
        if self.task != "classification":
            return None
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.y.max()) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


@dataclass
class DataBundle:
    """Train/validation/test datasets plus what the rest of the toolkit needs to know about them."""

    name: str
    train: Dataset
    val: Dataset | None
    test: Dataset
    task: TaskKind
    num_classes: int | None
    class_names: list[str] | None
    input_shape: tuple[int, ...]
    input_spec: dict[str, Any]
    split: dict[str, Any]
    extra_model_defaults: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    # split name -> attribute name -> (len(split),) strings, in the split's own row order
    attributes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def model_defaults(self) -> dict[str, Any]:
        """Arguments a model can take from the data when the recipe leaves them out."""
        shape = self.input_shape
        defaults: dict[str, Any] = {"input_shape": list(shape)}
        if self.num_classes is not None:
            defaults["num_classes"] = self.num_classes
        if len(shape) == 3:
            defaults["in_channels"] = shape[0]
            defaults["image_size"] = shape[1]
        if len(shape) == 1:
            defaults["in_features"] = shape[0]
        defaults.update(self.extra_model_defaults)
        return defaults


def stratified_split(
    y: np.ndarray, fractions: list[float], *, seed: int, stratify: bool
) -> list[np.ndarray]:
    """Split indices 0..N-1 into len(fractions)+1 parts; the last takes the rest.

    Stratified splits keep each class's share in every part (scikit-learn's
    train_test_split); the result depends only on `y`, the fractions and the seed.
    """
    from sklearn.model_selection import train_test_split

    remaining = np.arange(len(y))
    parts = []
    left = 1.0
    for i, frac in enumerate(fractions):
        if frac <= 0:
            parts.append(np.array([], dtype=np.int64))
            continue
        share = frac / left
        strat = y[remaining] if stratify else None
        rest, taken = train_test_split(remaining, test_size=share, random_state=seed + i, stratify=strat)
        parts.append(np.sort(taken))
        remaining = np.sort(rest)
        left -= frac
    parts.append(remaining)
    return parts


def build_data(
    name: str,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    dataset_kwargs: dict[str, Any] | None = None,
) -> DataBundle:
    """Build the registered dataset `name` and split it deterministically from `seed`."""
    from deepstrata.registry import DATASETS

    data = DATASETS.get(name)(**(dataset_kwargs or {}))
    if hasattr(data, "to_bundle"):  # data that splits itself: a graph masks nodes (data/graph_data.py)
        return data.to_bundle(name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    if not isinstance(data, TensorData):
        raise TypeError(f"dataset factory '{name}' must return TensorData, got {type(data).__name__}")
    data.validate(name)
    stratify = data.task == "classification"
    y_np = data.y.numpy() if stratify else np.zeros(len(data.y))
    if data.test_x is not None and data.test_y is not None:
        val_idx, train_idx = _split(name, y_np, [val_fraction], seed=seed, stratify=stratify)
        test_idx = None
        split: dict[str, Any] = {"test": "official", "test_size": len(data.test_x)}
    else:
        if test_fraction <= 0:
            raise DataError(f"dataset '{name}' has no official test set; set data.test_fraction above 0")
        test_idx, val_idx, train_idx = _split(name, y_np, [test_fraction, val_fraction], seed=seed, stratify=stratify)
        split = {"test": f"{test_fraction:g} of the data", "test_size": len(test_idx)}
    x, test_x, input_spec = data.x, data.test_x, dict(data.input_spec)
    if data.standardize:
        # Fitted on the training rows alone: validation and test rows never shape the statistics.
        from deepstrata.data.standardize import Standardize

        k = x.shape[1] if data.numeric_features is None else data.numeric_features
        scaler = Standardize().fit(x[torch.as_tensor(train_idx, dtype=torch.long), :k])

        def scaled(t: torch.Tensor) -> torch.Tensor:  # the leading k numeric columns; the rest as they are
            return torch.cat([scaler.transform(t[:, :k]), t[:, k:]], dim=1)

        x = scaled(x)
        test_x = scaled(test_x) if test_x is not None else None
        input_spec.update(_compose_standardize(input_spec, scaler, passthrough=x.shape[1] - k))
        split["standardized_on"] = "train"
    full = TensorDataset(x, data.y)
    if test_idx is None:
        test: Dataset = TensorDataset(test_x, data.test_y)
        test_y = data.test_y
    else:
        test = Subset(full, test_idx.tolist())
        split["test_indices_sha256"] = _sha256(test_idx.astype(np.int64).tobytes())
        test_y = data.y[torch.as_tensor(test_idx, dtype=torch.long)]
    # Fingerprint of the test labels: `strata evaluate` can check it rebuilt the same test set.
    split["test_labels_sha256"] = _sha256(test_y.contiguous().numpy().tobytes())
    split["val_indices_sha256"] = _sha256(val_idx.astype(np.int64).tobytes())
    split.update(
        seed=seed,
        stratified=stratify,
        train_size=len(train_idx),
        val_size=len(val_idx),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    return DataBundle(
        name=name,
        train=Subset(full, train_idx.tolist()),
        val=Subset(full, val_idx.tolist()) if len(val_idx) else None,
        test=test,
        task=data.task,
        num_classes=data.num_classes,
        class_names=data.class_names,
        input_shape=data.input_shape,
        input_spec={"shape": list(data.input_shape), **input_spec},
        split=split,
        extra_model_defaults=dict(data.model_defaults),
        artifacts=dict(data.artifacts),
        attributes=_split_attributes(data, train_idx, val_idx, test_idx),
    )


def _split_attributes(data: TensorData, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray | None) -> dict[str, dict[str, np.ndarray]]:
    """Each attribute column cut like the inputs: split -> name -> values in the split's row order."""
    if not data.attributes:
        return {}
    columns = {name: np.asarray(values) for name, values in data.attributes.items()}
    parts = {"train": train_idx, "val": val_idx}
    out = {split: {name: values[idx] for name, values in columns.items()} for split, idx in parts.items()}
    if test_idx is None:
        out["test"] = {name: np.asarray(values) for name, values in data.test_attributes.items()}
    else:
        out["test"] = {name: values[test_idx] for name, values in columns.items()}
    return out


def _split(name: str, y: np.ndarray, fractions: list[float], *, seed: int, stratify: bool) -> list[np.ndarray]:
    """`stratified_split`, with scikit-learn's complaints about tiny data turned into DataError."""
    try:
        return stratified_split(y, fractions, seed=seed, stratify=stratify)
    except ValueError as err:
        raise DataError(
            f"dataset '{name}' ({len(y)} examples) cannot be split into train/validation/test with "
            f"fractions {fractions}: {err}; give more examples per class or lower data.val_fraction/data.test_fraction"
        ) from None


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _compose_standardize(spec: dict[str, Any], scaler: Any, *, passthrough: int = 0) -> dict[str, Any]:
    """Fold z = (x - m) / s into the spec's x = (raw * scale - mean0) / std0.

    z = (raw * scale - (mean0 + m * std0)) / (std0 * s), so prediction applies one map.
    `passthrough` trailing columns were not standardised: m = 0, s = 1 for them.
    """
    mean0, std0 = float(spec.get("mean", 0.0)), float(spec.get("std", 1.0))
    stats = scaler.to_spec()
    stats = {"mean": stats["mean"] + [0.0] * passthrough, "std": stats["std"] + [1.0] * passthrough}
    return {
        "mean": [mean0 + m * std0 for m in stats["mean"]],
        "std": [std0 * s for s in stats["std"]],
    }
