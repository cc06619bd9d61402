"""Image folders: generated PNG/JPEG files, resize and grey options, and the bad-folder errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepstrata.api as api
from deepstrata.data.base import build_data
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS


def make_folder(root: Path, classes=("cat", "dog"), per_class: int = 4, size=(12, 10), ext: str = "png") -> Path:
    rng = np.random.default_rng(0)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.full((size[1], size[0], 3), 40 + 150 * k, dtype=np.uint8)
            arr[0, 0] = rng.integers(0, 256, 3)
            Image.fromarray(arr).save(root / cls / f"{i}.{ext}")
    return root


def test_reads_classes_from_sorted_folder_names(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", classes=("zebra", "ant"))
    (root / "ant" / "notes.txt").write_text("not an image, skipped")
    data = DATASETS.get("image_folder")(root=str(root))
    assert data.class_names == ["ant", "zebra"] and data.x.shape == (8, 3, 10, 12)
    assert data.y.tolist() == [0] * 4 + [1] * 4
    # Pixel values survive exactly (PNG is lossless): class 'zebra' was painted 40 + 150 * 0.
    assert torch.allclose(data.x[4, :, 5, 5], torch.full((3,), 40 / 255))


def test_resize_and_grayscale(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", ext="jpg")
    data = DATASETS.get("image_folder")(root=str(root), image_size=8, grayscale=True)
    assert data.x.shape == (8, 1, 8, 8) and data.x.dtype == torch.float32
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0


def test_train_and_test_sub_folders_give_an_official_test_split(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs" / "train", per_class=6)
    make_folder(tmp_path / "imgs" / "test", per_class=2)
    bundle = build_data("image_folder", seed=0, val_fraction=0.25, test_fraction=0.2, dataset_kwargs={"root": str(tmp_path / "imgs")})
    assert bundle.split["test"] == "official" and len(bundle.test) == 4 and len(bundle.train) + len(bundle.val) == 12


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    (root / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"dog/2\.png: corrupt or unreadable image"):
        DATASETS.get("image_folder")(root=str(root))


def test_truncated_image_is_caught_up_front(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", size=(64, 64), ext="jpg")
    path = root / "cat" / "1.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cat/1\.jpg: corrupt or unreadable image"):
        DATASETS.get("image_folder")(root=str(root))


def test_empty_folders_are_named(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="none: no class sub-folders"):
        DATASETS.get("image_folder")(root=str(tmp_path / "none"))
    root = make_folder(tmp_path / "imgs")
    (root / "emu").mkdir()
    with pytest.raises(DataError, match="emu: empty class folder"):
        DATASETS.get("image_folder")(root=str(root))


def test_mixed_sizes_ask_for_image_size(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "dog" / "9.png")
    with pytest.raises(DataError, match=r"dog/9\.png: image is 5x5 .* set data.image_size"):
        DATASETS.get("image_folder")(root=str(root))
    assert DATASETS.get("image_folder")(root=str(root), image_size=6).x.shape == (9, 3, 6, 6)


def test_unknown_test_class_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs" / "train")
    make_folder(tmp_path / "imgs" / "test", classes=("cat", "owl"))
    with pytest.raises(DataError, match="test/owl: class 'owl' is not among the training classes"):
        DATASETS.get("image_folder")(root=str(tmp_path / "imgs"))


def test_corrupt_image_stops_train_before_any_run_directory(tmp_path: Path, tiny_recipe: dict) -> None:
    root = make_folder(tmp_path / "imgs", per_class=6)
    (root / "cat" / "3.png").write_bytes(b"not an image")
    tiny_recipe["data"] = {"name": "image_folder", "root": str(root)}
    with pytest.raises(DataError, match=r"cat/3\.png: corrupt"):
        api.train(tiny_recipe)
    runs = Path(tiny_recipe["output_dir"])
    assert not runs.exists() or not any(runs.rglob("*"))
