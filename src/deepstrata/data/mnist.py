"""MNIST-family image sets read from their original IDX files: MNIST, Fashion-MNIST, KMNIST.

Problem: these benchmark sets cannot be downloaded at run time here, and users keep them in
their own directories.
Idea: read the four standard files (`train-images-idx3-ubyte[.gz]`, ...) from `data.root`,
or from `$DEEPSTRATA_DATA/<name>/` when no root is given; the official 10,000-image test
set stays the test split, and images are scaled to [0, 1]. Each set declares how its images
were made (`image_fit`, read by the Predictor to convert a user's drawing the same way) and
records its training images' statistics (`raw_stats`, for the Predictor's warnings).
(LeCun et al. 1998; Xiao et al. 2017 for Fashion-MNIST; Clanuwat et al. 2018 for KMNIST.)
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepstrata.data.base import TensorData
from deepstrata.cache import array_parts, cached_json
from deepstrata.data.input_check import reference_stats
from deepstrata.data.source import resolve_source
from deepstrata.data.idx import IMAGE_MAGIC, LABEL_MAGIC, read_idx
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

# How each set was made from its originals (data.image_fit.ImageFit). MNIST: the NIST digit
# scaled into a 20x20 box (aspect kept, anti-aliased), centred by centre of mass in 28x28
# (LeCun et al. 1998); over the 60,000 training images the ink box's long side is 20 px in
# 99.9% and the centre of mass sits at index (14.0, 14.0). Fashion-MNIST: the product's
# longest edge resized to 28 (Xiao et al. 2017; 98% of training images span 28 px). KMNIST:
# not measured here (no files), so the whole image is resized, with the polarity and levels.
MNIST_FIT = {"frame": 28, "box": 20, "center": "mass", "ink": "light"}
FASHION_FIT = {"frame": 28, "box": 28, "center": "box", "ink": "light"}
KMNIST_FIT = {"frame": 28, "ink": "light"}
# reference_stats of the 60,000 training images, for runs written before model.json kept them.
MNIST_STATS = {"pixel_mean": 33.3184, "pixel_std": 78.5675, "image_mean": [0.0254, 0.3976], "mid_grey": [0.0, 0.1238], "plain_border": [0.9537, 1.0]}
FASHION_STATS = {"pixel_mean": 72.9404, "pixel_std": 90.0212, "image_mean": [0.0193, 0.7523], "mid_grey": [0.0012, 0.7998], "plain_border": [0.5092, 1.0]}


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: missing {stem}.gz (or {stem}); an MNIST-style folder holds {', '.join(FILES.values())}")


def load_idx_folder(name: str, root: str | None, class_names: list[str], *, limit: int | None = None, image_fit: dict | None = None) -> TensorData:
    folder = resolve_source(name, root=root, what="its IDX files")
    paths = {key: _find(folder, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(path, expect_magic=IMAGE_MAGIC if key.endswith("x") else LABEL_MAGIC) for key, path in paths.items()}
    for part in ("train", "test"):
        images_, labels = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if images_.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{folder}: {part} images must be (N, H, W) and labels (N,), got {images_.shape} and {labels.shape}")
        if len(images_) != len(labels):
            raise DataError(f"{paths[part + '_y']}: {len(labels)} labels for the {len(images_)} images of {paths[part + '_x'].name}")
        if labels.size and labels.max() >= len(class_names):
            raise DataError(f"{paths[part + '_y']}: label {int(labels.max())} is outside the class range 0..{len(class_names) - 1} of '{name}'")

    def images(a):  # (N, 28, 28) uint8 -> (N, 1, 28, 28) float in [0, 1]
        return torch.from_numpy(a.copy()).unsqueeze(1).float().div_(255.0)

    n = limit or len(arrays["train_x"])
    x = images(arrays["train_x"][:n])
    spec = {"scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw": "grey level 0..255, ink is high", "raw_max": 255.0}
    # The same files always give the same statistics: computed once per content (1.4 s for MNIST).
    spec["raw_stats"] = cached_json("raw_stats-v1", array_parts(arrays["train_x"][:n]), lambda: reference_stats(x, 255.0))
    if image_fit is not None:
        spec["image_fit"] = dict(image_fit)
    return TensorData(
        x=x,
        y=torch.from_numpy(arrays["train_y"][:n].astype("int64")),
        test_x=images(arrays["test_x"]),
        test_y=torch.from_numpy(arrays["test_y"].astype("int64")),
        task="classification",
        class_names=class_names,
        input_spec=spec,
        description=f"{name} from {folder}",
    )


@register_dataset("mnist", image_fit=MNIST_FIT, raw_stats=MNIST_STATS)
def mnist(*, root: str | None = None, limit: int | None = None) -> TensorData:
    """MNIST handwritten digits from IDX files: 60,000 train + official 10,000 test, 28x28."""
    return load_idx_folder("mnist", root, [str(i) for i in range(10)], limit=limit, image_fit=MNIST_FIT)


@register_dataset("fashion_mnist", image_fit=FASHION_FIT, raw_stats=FASHION_STATS)
def fashion_mnist(*, root: str | None = None, limit: int | None = None) -> TensorData:
    """Fashion-MNIST clothing images from IDX files: 60,000 train + 10,000 test, 28x28."""
    return load_idx_folder("fashion_mnist", root, FASHION_CLASSES, limit=limit, image_fit=FASHION_FIT)


@register_dataset("kmnist", image_fit=KMNIST_FIT)
def kmnist(*, root: str | None = None, limit: int | None = None) -> TensorData:
    """Kuzushiji-MNIST (cursive Japanese) from IDX files: 60,000 train + 10,000 test, 28x28."""
    return load_idx_folder("kmnist", root, KMNIST_CLASSES, limit=limit, image_fit=KMNIST_FIT)
