"""CIFAR python batches: generated in the exact format, read safely; a code-running pickle is refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import deepstrata.api as api
from deepstrata.data.safe_pickle import UnsafePickleError, load_restricted
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS

CLASSES10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(obj: object, path: Path, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(folder: Path, *, per_batch: int = 10, protocol: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10 layout: bytes keys as in the original Python-2 files, (N, 3072) uint8 rows, R|G|B planes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kept = {}
    for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _dump({b"batch_label": stem.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * per_batch}, folder / stem, protocol)
        kept[stem] = data
    _dump({b"label_names": [c.encode() for c in CLASSES10], b"num_cases_per_batch": per_batch, b"num_vis": 3072}, folder / "batches.meta", protocol)
    return kept


class _RunsCode:
    """A pickle payload that would write a marker file through os.system when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_reads_generated_batches(tmp_path: Path, protocol: int) -> None:
    kept = write_cifar10(tmp_path / "c10", protocol=protocol)
    data = DATASETS.get("cifar10")(root=str(tmp_path / "c10"))
    assert data.x.shape == (50, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
    assert data.class_names == CLASSES10 and data.y.dtype == torch.int64
    # Row layout: the first 1024 values are the red plane, row-major.
    first = kept["data_batch_1"][0]
    assert torch.equal((data.x[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(first[:1024].reshape(32, 32)))
    assert torch.equal((data.x[0, 2, 31, 31] * 255).round().to(torch.uint8), torch.tensor(first[-1]))
    assert len(DATASETS.get("cifar10")(root=str(tmp_path / "c10"), limit=7).x) == 7


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "c100"
    folder.mkdir()
    for stem, n in (("train", 30), ("test", 12)):
        _dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(range(n)), "coarse_labels": [i % 20 for i in range(n)]}, folder / stem, 4)
    _dump({"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}, folder / "meta", 4)
    fine = DATASETS.get("cifar100")(root=str(folder))
    coarse = DATASETS.get("cifar100")(root=str(folder), labels="coarse")
    assert fine.num_classes == 100 and fine.class_names[5] == "f5" and fine.y.tolist() == list(range(30))
    assert coarse.num_classes == 20 and int(coarse.y.max()) == 19 and coarse.test_x.shape == (12, 3, 32, 32)


def test_restricted_unpickler_refuses_a_payload_that_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    _dump({b"data": _RunsCode(marker)}, evil)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refused to unpickle '(posix|os|nt)\.system'"):
        load_restricted(evil)
    assert not marker.exists(), "the payload ran"
    # The file really carries the call: its bytes name the system function.
    assert b"system" in evil.read_bytes()


@pytest.mark.parametrize("payload", [eval, getattr, __import__], ids=["eval", "getattr", "import"])
def test_other_builtins_are_refused_too(tmp_path: Path, payload) -> None:
    class Reducer:
        def __reduce__(self):
            return (payload, ("1",))

    path = tmp_path / "b.pkl"
    _dump([1, Reducer()], path)
    with pytest.raises(UnsafePickleError, match=r"refused to unpickle '(builtins|__builtin__)\."):
        load_restricted(path)


def test_malicious_batch_is_refused_through_the_loader_and_train(tmp_path: Path, tiny_recipe: dict) -> None:
    write_cifar10(tmp_path / "c10")
    marker = tmp_path / "pwned"
    _dump({b"labels": [0], b"data": _RunsCode(marker)}, tmp_path / "c10" / "data_batch_3")
    with pytest.raises(UnsafePickleError, match="data_batch_3: refused"):
        DATASETS.get("cifar10")(root=str(tmp_path / "c10"))
    tiny_recipe["data"] = {"name": "cifar10", "root": str(tmp_path / "c10")}
    with pytest.raises(DataError, match="data_batch_3: refused"):
        api.train(tiny_recipe)
    assert not marker.exists()
    runs = Path(tiny_recipe["output_dir"])
    assert not runs.exists() or not any(runs.rglob("*")), "nothing may be written for a refused dataset"


def test_plain_containers_and_arrays_load(tmp_path: Path) -> None:
    obj = {"a": [1, 2.5, "s", b"b", None, True, (1, 2)], "arr": np.arange(6, dtype=np.float32).reshape(2, 3), "dt": np.dtype("int16")}
    for protocol in (2, 4, 5):
        _dump(obj, tmp_path / "ok.pkl", protocol)
        out = load_restricted(tmp_path / "ok.pkl")
        assert out["a"] == obj["a"] and np.array_equal(out["arr"], obj["arr"]) and out["dt"] == np.dtype("int16")


def test_bad_cifar_files_name_the_file_and_the_problem(tmp_path: Path) -> None:
    folder = tmp_path / "c10"
    write_cifar10(folder)
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="test_batch: not a readable pickle"):
        DATASETS.get("cifar10")(root=str(folder))

    write_cifar10(folder)
    _dump({b"labels": [3, 12], b"data": np.zeros((2, 3072), np.uint8)}, folder / "data_batch_2")
    with pytest.raises(DataError, match=r"data_batch_2: label 12 is outside the class range 0\.\.9"):
        DATASETS.get("cifar10")(root=str(folder))

    write_cifar10(folder)
    _dump({b"labels": [3], b"data": np.zeros((1, 1024), np.uint8)}, folder / "data_batch_1")
    with pytest.raises(DataError, match=r"data_batch_1: 'data' must be a uint8 array of shape \(N, 3072\)"):
        DATASETS.get("cifar10")(root=str(folder))

    write_cifar10(folder)
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="missing data_batch_5"):
        DATASETS.get("cifar10")(root=str(folder))
