"""deepstrata/cache.py: a figure is computed once per content, never read for other bytes, and rebuilt when damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepstrata.cache import array_parts, cached_json, content_key
from deepstrata.data.input_check import reference_stats
from tests.conftest import requires_shared_data


class Counter:
    def __init__(self, value: dict):
        self.calls, self.value = 0, value

    def __call__(self) -> dict:
        self.calls += 1
        return self.value


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEEPSTRATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_second_call_reads_the_stored_figure(cache: Path) -> None:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    compute = Counter({"mean": 5.5, "range": [0.0, 1.0]})
    assert cached_json("k", array_parts(a), compute) == compute.value
    assert cached_json("k", array_parts(a.copy()), compute) == compute.value
    assert compute.calls == 1
    assert (cache / "k" / f"{content_key('k', array_parts(a))}.json").is_file()


def test_other_bytes_shape_dtype_or_kind_never_share_an_entry(cache: Path) -> None:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    b = a.copy()
    b[0, 0] = 99
    keys = {content_key("k", array_parts(x)) for x in (a, b, a.reshape(4, 3), a.astype(np.int16))} | {content_key("k2", array_parts(a))}
    assert len(keys) == 5
    assert content_key("k", [b"ab", b"c"]) != content_key("k", [b"a", b"bc"]), "parts are length-prefixed"


def test_a_damaged_entry_is_recomputed_and_off_always_computes(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = np.zeros(5, dtype=np.uint8)
    compute = Counter({"x": 1})
    cached_json("k", array_parts(a), compute)
    (cache / "k" / f"{content_key('k', array_parts(a))}.json").write_text("{trunc")
    assert cached_json("k", array_parts(a), compute) == {"x": 1} and compute.calls == 2
    assert cached_json("k", array_parts(a), compute) == {"x": 1} and compute.calls == 2, "the rewritten entry is read again"
    monkeypatch.setenv("DEEPSTRATA_CACHE", "off")
    cached_json("k", array_parts(a), compute)
    cached_json("k", array_parts(a), compute)
    assert compute.calls == 4


def test_an_unwritable_cache_still_gives_the_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEEPSTRATA_CACHE", str(blocker))
    assert cached_json("k", array_parts(np.ones(3, dtype=np.uint8)), Counter({"ok": True})) == {"ok": True}


@requires_shared_data("mnist")
def test_mnist_raw_stats_from_the_cache_equal_a_fresh_computation(cache: Path) -> None:
    from deepstrata.registry import DATASETS

    first = DATASETS.get("mnist")(limit=2000).input_spec["raw_stats"]
    again = DATASETS.get("mnist")(limit=2000).input_spec["raw_stats"]
    data = DATASETS.get("mnist")(limit=2000)
    assert first == again == reference_stats(data.x, 255.0)
    assert len(list((cache / "raw_stats-v1").iterdir())) == 1
