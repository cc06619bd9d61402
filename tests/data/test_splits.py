"""Splits are deterministic from the seed, stratified for classification, and recorded."""

from __future__ import annotations

import collections

import torch

from deepstrata.data.base import build_data


def _indices(bundle):
    return bundle.train.indices, bundle.val.indices, bundle.test.indices


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = build_data("digits", seed=7, val_fraction=0.1, test_fraction=0.2)
    b = build_data("digits", seed=7, val_fraction=0.1, test_fraction=0.2)
    c = build_data("digits", seed=8, val_fraction=0.1, test_fraction=0.2)
    assert _indices(a) == _indices(b) and a.split == b.split
    assert a.split["test_indices_sha256"] != c.split["test_indices_sha256"]
    assert set(a.test.indices) != set(c.test.indices)


def test_parts_are_disjoint_and_cover_everything() -> None:
    bundle = build_data("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
    train, val, test = (set(i) for i in _indices(bundle))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1797
    assert bundle.split["train_size"] == len(train) and bundle.split["test_size"] == len(test) == 360


def test_classification_splits_keep_class_shares() -> None:
    bundle = build_data("digits", seed=1, val_fraction=0.1, test_fraction=0.2)
    y = bundle.train.dataset.tensors[1]
    full = collections.Counter(y.tolist())
    test = collections.Counter(y[bundle.test.indices].tolist())
    for cls, count in full.items():
        assert abs(test[cls] / 360 - count / 1797) < 0.01, cls
    assert bundle.split["stratified"] is True


def test_split_record_fingerprints_the_test_set() -> None:
    bundle = build_data("iris", seed=0, val_fraction=0.1, test_fraction=0.2)
    for key in ("test_indices_sha256", "test_labels_sha256", "val_indices_sha256", "seed", "standardized_on"):
        assert key in bundle.split, key
    assert len(bundle.split["test_indices_sha256"]) == 16


def test_regression_split_is_not_stratified() -> None:
    bundle = build_data("diabetes", seed=0, val_fraction=0.1, test_fraction=0.2)
    assert bundle.split["stratified"] is False and bundle.task == "regression"


class _CountingDataset(torch.utils.data.Dataset):
    """Wraps the test split and counts every read."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        return self.inner[i]


def test_test_split_is_untouched_until_the_final_test(tiny_recipe, monkeypatch) -> None:
    import deepstrata.api as api
    import deepstrata.experiment as experiment
    from deepstrata.training.callbacks.base import Callback

    spies = []

    def spying_build_data(*args, **kwargs):
        bundle = build_data(*args, **kwargs)
        bundle.test = _CountingDataset(bundle.test)
        spies.append(bundle.test)
        return bundle

    class ReadsAtTestStart(Callback):
        def on_test_start(self, trainer) -> None:
            self.reads = spies[0].reads

    monkeypatch.setattr(experiment, "build_data", spying_build_data)
    probe = ReadsAtTestStart()
    tiny_recipe["data"] = {"name": "iris", "batch_size": 16}  # a small run; test_standardize checks the scaler
    tiny_recipe["model"] = {"name": "mlp", "hidden": [8]}
    tiny_recipe["trainer"].update(max_epochs=1, num_threads=1)
    api.train(tiny_recipe, extra_callbacks=[probe])
    assert probe.reads == 0, "training or validation read the test split"
    assert spies[0].reads >= len(spies[0]), "the final test read the whole test split"


def test_attributes_follow_the_rows_of_every_split(monkeypatch) -> None:
    """A descriptive column (a fairness group) is cut exactly like the inputs it describes."""
    import numpy as np

    from deepstrata.data.base import TensorData
    from deepstrata.registry import DATASETS

    x = torch.arange(200, dtype=torch.float32).view(100, 2)
    y = torch.arange(100) % 2
    tag = np.array([f"row{i}" for i in range(100)])
    monkeypatch.setitem(DATASETS._items, "_attr_rows", lambda: TensorData(x=x, y=y, task="classification", attributes={"tag": tag}))
    bundle = build_data("_attr_rows", seed=0, val_fraction=0.2, test_fraction=0.2)
    for split in ("train", "val", "test"):
        part = getattr(bundle, split)
        assert list(bundle.attributes[split]["tag"]) == [f"row{int(part[i][0][0]) // 2}" for i in range(len(part))]


def test_attributes_of_the_wrong_length_are_refused() -> None:
    import numpy as np
    import pytest

    from deepstrata.data.base import TensorData
    from deepstrata.errors import DataError

    data = TensorData(x=torch.zeros(4, 1), y=torch.zeros(4, dtype=torch.long), task="classification", attributes={"sex": np.array(["a", "b"])})
    with pytest.raises(DataError, match="attribute 'sex' has 2 values for 4 rows"):
        data.validate("toy")
