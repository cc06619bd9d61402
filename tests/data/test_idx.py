"""IDX files (MNIST family): small generated files, gzip and raw, and every kind of bad file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import requires_shared_data

from deepstrata.data.base import build_data
from deepstrata.data.idx import IMAGE_MAGIC, LABEL_MAGIC, read_idx
from deepstrata.data.mnist import FILES
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian int32 dims, body."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    return struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def write_mnist_folder(root: Path, *, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": np.arange(n_train, dtype=np.uint8) % 10,
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": np.arange(n_test, dtype=np.uint8) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (root / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_read_idx_round_trips_images_and_labels(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(1).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    for name, arr, magic in (("img", images, IMAGE_MAGIC), ("lab", labels, LABEL_MAGIC)):
        raw = idx_bytes(arr)
        path = tmp_path / name
        path.write_bytes(gzip.compress(raw) if gz else raw)
        out = read_idx(path, expect_magic=magic)
        assert out.dtype == np.uint8 and np.array_equal(out, arr)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_mnist_loader_reads_a_generated_folder(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist_folder(tmp_path / "m", gz=gz)
    data = DATASETS.get("mnist")(root=str(tmp_path / "m"))
    assert data.x.shape == (40, 1, 28, 28) and data.test_x.shape == (20, 1, 28, 28)
    torch.testing.assert_close(data.x[3, 0], torch.from_numpy(arrays["train_x"][3]).float() / 255)
    assert data.y.tolist() == arrays["train_y"].tolist() and data.y.dtype == torch.int64
    assert data.class_names == [str(i) for i in range(10)]
    limited = DATASETS.get("fashion_mnist")(root=str(tmp_path / "m"), limit=10)
    assert len(limited.x) == 10 and len(limited.test_x) == 20 and limited.class_names[0] == "T-shirt/top"


def test_official_test_set_stays_the_test_split(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    bundle = build_data("kmnist", seed=0, val_fraction=0.25, test_fraction=0.2, dataset_kwargs={"root": str(tmp_path / "m")})
    assert bundle.split["test"] == "official" and len(bundle.test) == 20
    assert len(bundle.train) + len(bundle.val) == 40


def test_wrong_magic_number_names_the_file(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    bad = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8), magic=0x12345678)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: wrong IDX magic number"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


def test_labels_file_where_images_belong_is_refused(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m", gz=False)
    (tmp_path / "m" / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(20, np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: wrong IDX magic number 2049 \(expected 2051\)"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_truncated_body_names_the_file(tmp_path: Path, gz: bool) -> None:
    write_mnist_folder(tmp_path / "m", gz=gz)
    stem = "train-images-idx3-ubyte"
    raw = idx_bytes(np.zeros((40, 28, 28), np.uint8))[:-100]
    path = tmp_path / "m" / (stem + ".gz" if gz else stem)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=rf"{stem}(\.gz)?: truncated or oversized IDX body"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


def test_cut_gzip_stream_is_a_clear_error(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    path = tmp_path / "m" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt gzip data"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


def test_missing_folder_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found; set data.root"):
        DATASETS.get("mnist")(root=str(tmp_path / "nowhere"))


def test_label_outside_the_class_range_names_the_labels_file(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    labels = np.arange(20, dtype=np.uint8) % 10
    labels[7] = 12
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 12 is outside the class range 0\.\.9"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(39, np.uint8))))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: 39 labels for the 40 images"):
        DATASETS.get("mnist")(root=str(tmp_path / "m"))


@requires_shared_data("mnist")
def test_real_mnist_from_shared_data() -> None:
    data = DATASETS.get("mnist")()  # $DEEPSTRATA_DATA/mnist, set by conftest
    assert data.x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert data.y.bincount().tolist()[:3] == [5923, 6742, 5958]  # the published MNIST class counts
    assert 0.12 < float(data.x.mean()) < 0.14  # MNIST's mean intensity is 0.1307


def test_bad_idx_file_stops_train_before_any_run_directory(tmp_path: Path, tiny_recipe: dict) -> None:
    import deepstrata.api as api

    write_mnist_folder(tmp_path / "m")
    labels = np.arange(40, dtype=np.uint8) % 10
    labels[0] = 200
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    tiny_recipe["data"] = {"name": "mnist", "root": str(tmp_path / "m")}
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: label 200 is outside the class range"):
        api.train(tiny_recipe)
    runs = Path(tiny_recipe["output_dir"])
    assert not runs.exists() or not any(runs.rglob("*"))
