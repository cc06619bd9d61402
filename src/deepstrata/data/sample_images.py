"""scikit-learn's two sample photographs, for explainability and augmentation demos.

Problem: saliency maps, Grad-CAM and augmentation previews need real colour photographs
with recognisable content, and a test machine has no network to fetch any.
Idea: scikit-learn ships two 427x640 RGB JPEGs (a Chinese temple, "china.jpg", and a flower,
"flower.jpg"); read them with Pillow, optionally resize, and label each by its file name.
Two images cannot be split for training: use them directly, `DATASETS.get("sample_images")()`.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset


@register_dataset("sample_images")
def sample_images(*, image_size: int | None = None) -> TensorData:
    """scikit-learn's two sample photos (china, flower), RGB in [0, 1], optionally resized to a square."""
    from pathlib import Path

    import sklearn.datasets
    from PIL import Image

    if image_size is not None and image_size < 1:
        raise DataError(f"sample_images: image_size must be a positive number of pixels, got {image_size}")
    folder = Path(sklearn.datasets.__file__).parent / "images"
    names = ["china", "flower"]
    arrays = []
    for name in names:
        path = folder / f"{name}.jpg"
        if not path.is_file():
            raise DataError(f"{path}: scikit-learn's sample image is missing; reinstall scikit-learn")
        with Image.open(path) as img:
            img = img.convert("RGB")
            if image_size is not None:
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(img, dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)  # (2, 3, H, W)
    return TensorData(
        x=x.contiguous(),
        y=torch.arange(2, dtype=torch.int64),
        task="classification",
        class_names=names,
        input_spec={"scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw": "RGB 0..255", "raw_max": 255.0},
        description=f"scikit-learn sample images {', '.join(n + '.jpg' for n in names)} from {folder}",
    )
