"""Warnings for inputs unlike the training data: wrong value range, odd grey levels, photos.

Problem: a classifier gives every input one of its classes, often with a high probability,
so a digit scaled to 0..1 instead of 0..16, or a holiday photo, comes back as a confident
"1" or "8" and the user has no way to tell the answer means nothing.
Idea: measure a few per-image statistics that the training images keep within narrow bounds
and flag an input outside them (the prediction is still made). Loaders record the bounds over
their training images (`reference_stats`, in `input_spec["raw_stats"]`); each check is a fixed
rule, so the same input always gets the same warnings:
- range: values above the data's maximum, negative values, or a maximum of at most 1.0 on a
  model that reads 0..16 or 0..255 grey levels (the input was probably scaled already);
- mean grey level (of what the model reads) outside the training images' range;
- "photo": no plain background (less than 70% of the outer ring near its median) and many
  mid-grey pixels (over 20%), each also beyond every training image; or, for a grey model, a
  colour image with most pixels saturated;
- a digit so small that it is scaled up more than 2x into the dataset's box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepstrata.data.image_fit import ImageFit, border, ink_box, stretch_levels

MID_GREY = (0.25, 0.75)  # a pixel is mid-grey between these fractions of full scale
PLAIN_TOLERANCE = 0.1  # a ring pixel is background within this fraction of full scale of the ring's median
# A photo has no plain background: the ring's median splits it in half, so about half its
# ring lies within the tolerance (measured 0.53-0.62 on a portrait, noise, gradients), against
# at least 0.75 for a drawing at any size (the test renderings at 8, 28 and 200 px); and many
# mid-grey pixels (0.25-0.36 against at most 0.27). Both floors must be crossed, and both the
# training images' own bounds, so no training image is ever called a photo.
PHOTO_PLAIN_BELOW = 0.7
PHOTO_MID_GREY_ABOVE = 0.2
MAX_UPSCALE = 2.0  # a digit scaled up more than this had too few pixels to show its shape
SATURATED = 0.35  # HSV saturation above which a pixel is coloured
SATURATED_SHARE = 0.5  # a grey model's input with more coloured pixels than this is a photo
PHOTO = "this looks like a photo, not a digit on a plain background"


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of (N, H, W) images with bright ink in 0..1.

    image_mean: the mean grey level (of the image as the model reads it); mid_grey: the share
    of pixels between MID_GREY, and plain_border: the share of the outer ring within
    PLAIN_TOLERANCE of its median (both of the image with its levels stretched).
    """
    images = np.asarray(images, dtype=np.float32)
    stretched = stretch_levels(images)
    rings = border(stretched)  # (N, 2H + 2W - 4)
    medians = np.median(rings, axis=1, keepdims=True)
    return {
        "image_mean": images.mean(axis=(1, 2)),
        "mid_grey": ((stretched > MID_GREY[0]) & (stretched < MID_GREY[1])).mean(axis=(1, 2)),
        "plain_border": (np.abs(rings - medians) <= PLAIN_TOLERANCE).mean(axis=1),
    }


def reference_stats(images: Any, raw_max: float) -> dict[str, Any]:
    """The training images' bounds, as model.json records them; `images` is (N, 1, H, W) or (N, H, W) in 0..1.

    pixel_mean/pixel_std are in raw units (MNIST: 33.3 and 78.6 of 255); the ranges are
    [min, max] over the images, in fractions of full scale, rounded outwards to 4 decimals.
    """
    x = np.asarray(images, dtype=np.float32)
    x = x.reshape(len(x), x.shape[-2], x.shape[-1])
    stats = image_statistics(x)
    return {
        "pixel_mean": round(float(x.mean()) * raw_max, 4),
        "pixel_std": round(float(x.std()) * raw_max, 4),
        **{k: [round(float(np.floor(v.min() * 1e4)) / 1e4, 4), round(float(np.ceil(v.max() * 1e4)) / 1e4, 4)] for k, v in stats.items()},
    }


def value_warnings(raw: np.ndarray, raw_max: float, what: str) -> list[str]:
    """Range checks of one raw input (arrays: the user's values as given)."""
    top, low = float(np.max(raw)), float(np.min(raw))
    levels = f"this model reads {what}"
    if low < 0:
        return [f"negative values (min {low:.3g}): {levels}, not standardised inputs"]
    if top > raw_max * 1.001:
        return [f"values up to {top:.4g}, above {raw_max:g}: {levels}"]
    if raw_max > 1.0 and 0 < top <= 1.0:
        return [f"values look scaled to 0..1; {levels} (multiply by {raw_max:g})"]
    if top == low:
        return ["the input is blank (a single grey level)"]
    return []


def statistics_warnings(
    given: np.ndarray, fitted: np.ndarray, reference: dict[str, Any], fit: ImageFit | None = None, rgb: np.ndarray | None = None
) -> list[str]:
    """Checks of one image against the training bounds `reference` (see `reference_stats`).

    given: the image as the user gave it, (H, W) in 0..1 with bright ink; fitted: what the
    model will read, (frame, frame) in 0..1; rgb: the colour image (H, W, 3) in 0..1 when a
    grey model was given one.
    """
    warnings, photo = [], _colour(rgb) if rgb is not None else []
    shape = {k: float(v[0]) for k, v in image_statistics(given[None]).items()}
    plain_floor = min(PHOTO_PLAIN_BELOW, reference.get("plain_border", [1.0])[0])
    mid_ceiling = max(PHOTO_MID_GREY_ABOVE, reference.get("mid_grey", [0.0, 0.0])[1])
    if shape["plain_border"] < plain_floor and shape["mid_grey"] > mid_ceiling:
        photo.append(f"only {shape['plain_border']:.0%} of the outer ring is plain background and {shape['mid_grey']:.0%} of the pixels are mid-grey")
    if photo:
        warnings.append(f"{PHOTO} ({'; '.join(photo)})")
    box = ink_box(given)
    if fit is not None and fit.box and box is not None:
        long_side = max(box[1] - box[0], box[3] - box[2])
        if fit.box / long_side > MAX_UPSCALE:
            warnings.append(f"the digit is only {long_side} px on its long side (scaled up {fit.box / long_side:.1f}x to the {fit.box}-px box): too small to show its shape clearly")
    if "image_mean" in reference:
        lo, hi = reference["image_mean"]
        mean = float(fitted.mean())
        if not lo <= mean <= hi:
            warnings.append(f"mean grey level {mean:.3f} of full scale is outside the training images' {lo:.3f}..{hi:.3f}")
    return warnings


def _colour(rgb: np.ndarray) -> list[str]:
    """A colour image (H, W, 3) in 0..1 for a grey model: a photo's reason when most pixels are saturated."""
    top, bottom = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(top > 0.1, (top - bottom) / np.maximum(top, 1e-6), 0.0)  # HSV saturation
    share = float((saturation > SATURATED).mean())
    return [f"{share:.0%} of the pixels are coloured; this model reads grey digits"] if share > SATURATED_SHARE else []
