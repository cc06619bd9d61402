"""Image augmentation on whole batches through kornia: crop, flip, affine, colour, erasing, normalise.

Problem: a convolutional network trained on few images memorises their exact pixels; the
label of a photograph does not change when it is shifted, mirrored, slightly rotated,
re-lit or partly hidden (Krizhevsky et al. 2012; Simard et al. 2003; DeVries & Taylor 2017
and Zhong et al. 2020 for random erasing / cutout).
Idea: sample such label-preserving changes afresh for every batch, batched and
differentiable, with kornia.augmentation (Riba et al. 2020) so the same code runs on CPU and
GPU; each keeps the batch's shape, dtype and [0, 1] range (normalisation maps to zero mean).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from deepstrata.registry import register_transform
from deepstrata.transforms.base import BatchTransform, check_images


class KorniaAugment(BatchTransform):
    """Wraps one kornia augmentation; built lazily because some need the image size.

    `build(c, h, w)` is a module-level function or a partial of one, so DataLoader worker
    processes can pickle the transform under any multiprocessing start method.
    """

    def __init__(self, name: str, build: Any):
        super().__init__()
        self.name = name
        self.build = build  # (C, H, W) -> kornia module
        self._aug: Any = None
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self.name, x)
        shape = tuple(x.shape[1:])
        if self._aug is None or shape != self._shape:
            self._aug, self._shape = self.build(*shape), shape
        return self._aug(x).to(x.dtype), y


@register_transform("random_crop")
def random_crop(*, padding: int = 4, fill: float = 0.0) -> KorniaAugment:
    """Pad each side by `padding` pixels, then crop back to the original size at a random place."""
    if padding < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding}")
    return KorniaAugment("random_crop", partial(_crop, padding=padding, fill=fill))


def _crop(c: int, h: int, w: int, *, padding: int, fill: float) -> Any:
    import kornia.augmentation as K

    return K.RandomCrop((h, w), padding=padding, fill=fill, p=1.0)


@register_transform("horizontal_flip")
def horizontal_flip(*, p: float = 0.5) -> KorniaAugment:
    """Mirror each image left-right with probability p (not for digits/text, where mirroring changes the class)."""
    return KorniaAugment("horizontal_flip", partial(_flip, p=p))


def _flip(c: int, h: int, w: int, *, p: float) -> Any:
    import kornia.augmentation as K

    return K.RandomHorizontalFlip(p=p)


@register_transform("random_affine")
def random_affine(*, degrees: float = 10.0, translate: float = 0.1, scale: tuple[float, float] = (0.9, 1.1), shear: float = 0.0, p: float = 1.0) -> KorniaAugment:
    """Small random rotation (+-degrees), shift (fraction of the size), zoom and shear; zeros fill the border."""
    return KorniaAugment("random_affine", partial(_affine, degrees=degrees, translate=translate, scale=tuple(scale), shear=shear, p=p))


def _affine(c: int, h: int, w: int, *, degrees: float, translate: float, scale: tuple[float, float], shear: float, p: float) -> Any:
    import kornia.augmentation as K

    return K.RandomAffine(degrees=degrees, translate=(translate, translate), scale=scale, shear=shear or None, p=p)


@register_transform("color_jitter")
def color_jitter(*, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.0, hue: float = 0.0, p: float = 1.0) -> KorniaAugment:
    """Random brightness/contrast (and saturation/hue for RGB) changes, clamped to [0, 1]."""
    return KorniaAugment("color_jitter", partial(_jitter, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue, p=p))


def _jitter(c: int, h: int, w: int, *, brightness: float, contrast: float, saturation: float, hue: float, p: float) -> Any:
    import kornia.augmentation as K

    if c != 3 and (saturation or hue):
        raise ValueError(f"color_jitter: saturation and hue need RGB images, got {c} channel(s); set them to 0")
    return K.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue, p=p)


@register_transform("random_erasing")
def random_erasing(*, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.2), ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> KorniaAugment:
    """Cutout: with probability p, blank a random rectangle covering `scale` of the image (fill `value`)."""
    return KorniaAugment("random_erasing", partial(_erase, scale=tuple(scale), ratio=tuple(ratio), value=value, p=p))


def _erase(c: int, h: int, w: int, *, scale: tuple[float, float], ratio: tuple[float, float], value: float, p: float) -> Any:
    import kornia.augmentation as K

    return K.RandomErasing(scale=scale, ratio=ratio, value=value, p=p)


class Normalize(BatchTransform):
    """x -> (x - mean[c]) / std[c] per channel; applied to every split and replayed at prediction."""

    every_split = True

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        if len(mean) != len(std) or not mean:
            raise ValueError(f"normalize: mean and std need one value per channel, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"normalize: every std must be positive, got {std}")
        self.mean, self.std = list(mean), list(std)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import kornia.augmentation as K

        check_images("normalize", x)
        if len(self.mean) not in (1, x.shape[1]):
            raise ValueError(f"normalize: {len(self.mean)} means for images with {x.shape[1]} channels")
        return K.Normalize(mean=torch.tensor(self.mean), std=torch.tensor(self.std))(x), y

    def input_spec_update(self) -> dict[str, Any]:
        return {"normalize": {"mean": self.mean, "std": self.std}}


@register_transform("normalize")
def normalize(*, mean: list[float], std: list[float]) -> Normalize:
    """Per-channel (x - mean) / std on every split (e.g. MNIST: mean [0.1307], std [0.3081])."""
    return Normalize(mean, std)
