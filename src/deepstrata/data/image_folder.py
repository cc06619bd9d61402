"""Image folders: one sub-folder per class, the layout people keep their own photos in.

Problem: users' images arrive as files of mixed sizes and modes, sometimes with a broken file
among thousands, and a loader that fails at epoch 3 wastes the run.
Idea: read every image up front with Pillow (`root/<class>/<image>`; `root/train/...` and
`root/test/...` when an official test part exists), convert to grey or RGB, resize when
asked, and stop before training with one error naming the file and the problem. Class
indices follow the sorted folder names (the ImageFolder convention of torchvision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.data.source import resolve_source, split_folders
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _class_folders(folder: Path) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class sub-folders; an image folder holds one sub-folder of images per class (e.g. {folder}/cat/1.png)")
    return classes


def _images_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: empty class folder (no {', '.join(IMAGE_EXTENSIONS)} files); remove it or add images")
    return files


def _read(path: Path, *, mode: str, image_size: int | None, first_size: list[tuple[int, int]]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not during training
            img = img.convert(mode)
            if image_size is not None:
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: corrupt or unreadable image ({err}); remove or replace the file") from None
    if not first_size:
        first_size.append(img.size)
    elif img.size != first_size[0]:
        raise DataError(
            f"{path}: image is {img.size[0]}x{img.size[1]} but earlier images are {first_size[0][0]}x{first_size[0][1]}; "
            "set data.image_size=N to resize every image to NxN"
        )
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)


def _load_part(folder: Path, classes: list[str], *, mode: str, image_size: int | None, first_size: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for sub in _class_folders(folder):
        if sub.name not in classes:
            raise DataError(f"{sub}: class '{sub.name}' is not among the training classes ({', '.join(classes)})")
        for path in _images_in(sub):
            images.append(_read(path, mode=mode, image_size=image_size, first_size=first_size))
            labels.append(classes.index(sub.name))
    x = torch.from_numpy(np.stack(images)).float().div_(255.0)  # (N, C, H, W) in [0, 1]
    return x, torch.tensor(labels, dtype=torch.int64)


def read_images(folder: str | Path, *, grayscale: bool, image_size: int | None = None) -> torch.Tensor:
    """Every image under `folder` (sub-folders included, sorted by path) as (N, C, H, W) floats in [0, 1].

    Read, converted and checked as the image_folder dataset reads a class folder (one size, or
    `image_size` to resize every image to a square); for sets of examples such as TCAV's concepts.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: not a folder of images; give a directory holding {', '.join(IMAGE_EXTENSIONS)} files")
    first_size: list[tuple[int, int]] = []
    images = [_read(p, mode="L" if grayscale else "RGB", image_size=image_size, first_size=first_size) for p in _images_in(path)]
    return torch.from_numpy(np.stack(images)).float().div_(255.0)


@register_dataset("image_folder")
def image_folder(*, root: str | None = None, image_size: int | None = None, grayscale: bool = False) -> TensorData:
    """Your own images, one sub-folder per class (train/ and test/ optional), read with Pillow."""
    if image_size is not None and image_size < 1:
        raise DataError(f"image_folder: image_size must be a positive number of pixels, got {image_size}")
    folder = resolve_source("image_folder", root=root, what="one sub-folder of images per class")
    train_dir, test_dir = split_folders(folder)
    classes = [p.name for p in _class_folders(train_dir)]
    mode = "L" if grayscale else "RGB"
    first_size: list[tuple[int, int]] = []
    x, y = _load_part(train_dir, classes, mode=mode, image_size=image_size, first_size=first_size)
    test_x, test_y = _load_part(test_dir, classes, mode=mode, image_size=image_size, first_size=first_size) if test_dir else (None, None)
    return TensorData(
        x=x,
        y=y,
        test_x=test_x,
        test_y=test_y,
        task="classification",
        class_names=classes,
        input_spec={"scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw": f"{'grey' if grayscale else 'RGB'} 0..255", "raw_max": 255.0},
        description=f"image folder {folder} ({len(x)} training images, {len(classes)} classes)",
    )
