"""Fitting an outside image into a digit dataset's format: polarity, levels, crop, scale, centre.

Problem: a model trained on MNIST has only seen light ink on a black background, each digit
scaled into a 20x20 box and centred by its centre of mass in a 28x28 frame; a black-on-white
drawing simply resized to 28x28 is none of that, and the model answers confidently and wrongly.
Idea: replay the steps that made the dataset on the new image. MNIST (LeCun et al. 1998):
"size normalized to fit in a 20x20 pixel box while preserving their aspect ratio ...
anti-aliasing ... centered in a 28x28 image by computing the center of mass of the pixels".
The UCI/scikit-learn 8x8 digits count the on-pixels of 32x32 bitmaps in 4x4 blocks, and all
1,797 have ink in their top and bottom rows: the ink's box spans the frame's height, so an
area-averaged resize of the ink's box into the 8x8 frame gives the same kind of grey levels.
Datasets declare how they were made as `ImageFit` (`input_spec["image_fit"]`, and the
`image_fit=` metadata of their `@register_dataset` for runs written before the key existed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepstrata.errors import UserError

INK_THRESHOLD = 0.1  # a pixel is ink above this fraction of the image's brightest pixel
TOLERANCE_PX = 1.0  # an image whose ink box is the box and whose centre is this close is left unchanged
OVERSAMPLE = 4  # a drawing smaller than the box is redrawn at 4x the box before anti-aliasing


@dataclass(frozen=True)
class ImageFit:
    """How a dataset's images were made from the original drawings.

    frame: side of the square image the model reads (28 for MNIST).
    box: the longer side of the ink's bounding box after scaling (MNIST 20, digits 8);
        None when the dataset resized whole images to the frame (nothing is cropped).
    center: "mass" (the centre of mass at the frame's centre, MNIST) or "box" (the ink's
        bounding box centred).
    ink: "light" when the dataset's ink is bright on a dark background, "dark" otherwise.
    """

    frame: int
    box: int | None = None
    center: str = "box"
    ink: str = "light"

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ImageFit:
        """From model.json's `input_spec["image_fit"]` or a dataset's registry metadata."""
        known = {"frame", "box", "center", "ink"}
        if not isinstance(spec, dict) or "frame" not in spec or set(spec) - known:
            raise UserError(f"image_fit must be a mapping with 'frame' and optional 'box', 'center', 'ink', got {spec!r}")
        fit = cls(**spec)
        if fit.center not in ("mass", "box") or fit.ink not in ("light", "dark"):
            raise UserError(f"image_fit: center must be 'mass' or 'box' and ink 'light' or 'dark', got {spec!r}")
        if fit.box is not None and not 0 < fit.box <= fit.frame:
            raise UserError(f"image_fit: box {fit.box} must lie between 1 and the frame {fit.frame}")
        return fit


def border(img: np.ndarray) -> np.ndarray:
    """The outer ring of pixels of an (..., H, W) image: (..., 2H + 2W - 4), or all pixels when H or W < 3."""
    if min(img.shape[-2:]) < 3:
        return img.reshape(*img.shape[:-2], -1)
    return np.concatenate([img[..., 0, :], img[..., -1, :], img[..., 1:-1, 0], img[..., 1:-1, -1]], axis=-1)


def background_is_light(img: np.ndarray, full: float = 1.0) -> bool:
    """Whether the median of the outer ring is in the upper half of the range 0..full."""
    return float(np.median(border(img))) > full / 2


def stretch_levels(img: np.ndarray) -> np.ndarray:
    """Background (the ring's median) -> 0, the brightest ink -> 1, clipped; a blank image -> zeros.

    A pencil drawing or a photographed page has a grey background and grey ink; the training
    digits have a black background and fully bright stroke cores (MNIST's brightest pixel is
    254-255 in every training image, the digits' 14-16 of 16). `img` is (..., H, W).
    """
    bg = np.median(border(img), axis=-1)[..., None, None]
    span = img.max(axis=(-2, -1), keepdims=True) - bg
    out = np.clip((img - bg) / np.maximum(span, 1e-3), 0.0, 1.0)
    return np.where(span < 1e-3, 0.0, out).astype(np.float32)


def ink_box(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom/right exclusive, of the pixels above INK_THRESHOLD of the maximum."""
    top = float(img.max())
    if top <= 0:
        return None
    ink = img > INK_THRESHOLD * top
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, column) of the grey-level-weighted centre, in pixel indices."""
    total = float(img.sum())
    rows, cols = np.indices(img.shape)
    return float((img * rows).sum()) / total, float((img * cols).sum()) / total


def _target(img: np.ndarray, box: tuple[int, int, int, int], fit: ImageFit) -> tuple[float, float]:
    """Where the image's reference point is and where the format wants it: (d_row, d_col) to move."""
    if fit.center == "mass":
        cy, cx = center_of_mass(img)
        # MNIST's training digits have their centre of mass at index (14.0, 14.0) on average
        # (measured: 13.996 and 14.007 over the 60,000 training images): frame / 2.
        return fit.frame / 2 - cy, fit.frame / 2 - cx
    top, bottom, left, right = box
    return (fit.frame - (top + bottom)) / 2, (fit.frame - (left + right)) / 2


def is_fitted(img: np.ndarray, fit: ImageFit) -> bool:
    """Already in the format: frame-sized, the ink box's long side the box, its centre within TOLERANCE_PX.

    Dataset images themselves pass this test (59,984 of MNIST's 60,000 training digits, 1,796 of
    the 1,797 8x8 digits), so they go to the model exactly as stored, never resampled.
    """
    box = ink_box(img)
    if img.shape != (fit.frame, fit.frame) or box is None or fit.box is None:
        return False
    long_side = max(box[1] - box[0], box[3] - box[2])
    dy, dx = _target(img, box, fit)
    return long_side == fit.box and max(abs(dy), abs(dx)) <= TOLERANCE_PX


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float image: shrinking averages the area each new pixel covers (MNIST's
    anti-aliasing of binary NIST digits), enlarging interpolates bilinearly."""
    from PIL import Image

    if img.shape == (height, width):
        return img.astype(np.float32)
    shrink = height <= img.shape[0] and width <= img.shape[1]
    filt = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    out = Image.fromarray(img.astype(np.float32), mode="F").resize((width, height), filt)
    return np.asarray(out, dtype=np.float32)


def fit_image(img: np.ndarray, fit: ImageFit) -> np.ndarray:
    """An (H, W) image with bright ink -> the (frame, frame) image the dataset would hold.

    Crop to the ink's bounding box, scale its longer side to `fit.box` (keeping the aspect
    ratio; a drawing smaller than the box is redrawn as a binary stroke first), then place
    it in the frame: centre of mass or box at the frame's centre, shifted by whole pixels and
    kept inside the frame. Values keep their scale.
    """
    if fit.box is None:
        return _resize(img, fit.frame, fit.frame)
    box = ink_box(img)
    if box is None:
        return np.zeros((fit.frame, fit.frame), dtype=np.float32)
    if is_fitted(img, fit):
        return img.astype(np.float32)
    top, bottom, left, right = box
    crop = img[top:bottom, left:right]
    if max(crop.shape) < fit.box:
        # Scaling a small drawing up smears its strokes into a blur the training digits never
        # have. Redraw it as NIST's digits were: a binary stroke at OVERSAMPLE times the box
        # (threshold at half the brightest level), to be anti-aliased down to the box.
        scale = OVERSAMPLE * fit.box / max(crop.shape)
        big = _resize(crop, round(crop.shape[0] * scale), round(crop.shape[1] * scale))
        stroke = big > 0.5 * big.max()
        rows, cols = np.nonzero(stroke.any(1))[0], np.nonzero(stroke.any(0))[0]
        crop = stroke[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) * float(crop.max())
    scale = fit.box / max(crop.shape)
    small = _resize(crop, max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))  # (h, w), long side = box
    dy, dx = _target(small, (0, small.shape[0], 0, small.shape[1]), fit)
    # Whole-pixel shifts, kept inside the frame: a "7" whose mass sits in its top bar would
    # otherwise lose its foot (MNIST's digits are never cut: their box is 20 px in 99.9%).
    row = min(max(int(np.floor(dy + 0.5)), 0), fit.frame - small.shape[0])
    col = min(max(int(np.floor(dx + 0.5)), 0), fit.frame - small.shape[1])
    out = np.zeros((fit.frame, fit.frame), dtype=np.float32)
    out[row : row + small.shape[0], col : col + small.shape[1]] = small
    return out


def to_light_ink(img: np.ndarray, full: float = 1.0) -> tuple[np.ndarray, bool]:
    """Invert an image on a light background (ring median above full/2); returns (image, inverted)."""
    if background_is_light(img, full):
        return full - img, True
    return img, False
