"""Client splits: each registered split is a partition, and the skewed ones skew as the papers define."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.errors import UserError
from deepstrata.federated.splits import describe, dirichlet, iid, shards
from deepstrata.registry import registry

LABELS = np.repeat(np.arange(10), 300)[np.random.default_rng(0).permutation(3000)]


@pytest.mark.parametrize("name", registry("client_split").names())
def test_every_registered_split_is_a_partition_and_reproducible(name: str) -> None:
    split = registry("client_split").get(name)
    parts = split(LABELS, 20, 3)
    together = np.concatenate(parts)
    assert len(parts) == 20
    assert np.array_equal(np.sort(together), np.arange(len(LABELS)))  # every example exactly once
    again = split(LABELS, 20, 3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split(LABELS, 20, 4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_iid_shares_are_equal_and_hold_every_class() -> None:
    stats = describe(iid(LABELS, 20, 0), LABELS)
    assert (stats["size_min"], stats["size_max"]) == (150, 150)
    assert stats["classes_per_client_min"] == 10


def test_shards_give_most_clients_two_labels() -> None:
    parts = shards(LABELS, 100, 0)  # 200 shards of 15 examples; 300 per label, so no shard straddles two labels
    classes = [len(np.unique(LABELS[p])) for p in parts]
    assert all(len(p) == 30 for p in parts)
    assert max(classes) <= 2 and np.mean(classes) > 1.8  # two shards of the same label happen, rarely


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    severe = describe(dirichlet(LABELS, 20, 0, alpha=0.1), LABELS)
    mild = describe(dirichlet(LABELS, 20, 0, alpha=100.0), LABELS)
    assert severe["classes_per_client_mean"] < 5 < 9.5 <= mild["classes_per_client_mean"]
    assert severe["size_min"] >= 10


def test_impossible_splits_say_what_to_change() -> None:
    with pytest.raises(UserError, match="use fewer clients"):
        iid(LABELS[:5], 10, 0)
    with pytest.raises(UserError, match="alpha must be > 0"):
        dirichlet(LABELS, 10, 0, alpha=0.0)
    with pytest.raises(UserError, match="raise alpha"):
        dirichlet(LABELS[:300], 25, 0, alpha=0.001, min_size=12)
    with pytest.raises(UserError, match="shards"):
        shards(LABELS[:10], 10, 0)
