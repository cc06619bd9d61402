"""Out-of-distribution sets for a trained model: another dataset, noise, or the user's own files.

Problem: testing whether a model notices unfamiliar inputs needs those inputs in exactly the
form the model's own data reached it (same raw units, scaling, normalisation and shape);
Fashion-MNIST fed unscaled to an MNIST model, or noise outside the pixel range, is a test of
the preprocessing, not of the detector.
Idea: bring every out-set to the run's RAW units first (a registered dataset's values rescaled
from its full scale to the run's, 8-bit files from 0..255 to the run's full scale, noise drawn
in the run's raw range and clipped to it), fit it to the run's input shape (images are resized
and converted between grey and RGB; anything else must match), then apply the run's own
input map ((raw * scale - mean) / std, `TensorData.input_spec`), the map the Predictor applies.
The run's every-split transforms (a `normalize`) are the caller's to apply (its test loader's
collate function), as for the in-distribution test inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.errors import DataError, UserError, did_you_mean

NOISE = ("gaussian", "uniform")


@dataclass
class OutSet:
    """Inputs (N, *run input shape) in the run's model space, and a phrase saying what they are."""

    x: torch.Tensor
    description: str


def load_out_set(
    source: str,
    *,
    input_spec: dict[str, Any],
    count: int,
    seed: int = 0,
    reference: torch.Tensor | None = None,
) -> OutSet:
    """At most `count` out-of-distribution inputs for a model whose data is described by `input_spec`.

    source: a registered dataset name (its official test part when it has one), "gaussian" or
    "uniform" noise, or a path: an IDX image file, a `.npy` array (uint8: 8-bit images;
    floats: values in the run's raw units, as `Predictor.preprocess` takes them) or a folder of
    images (read recursively). reference: in-distribution model inputs, whose range bounds the
    noise when the spec declares no raw range (`raw_max`). Subsets are drawn with `seed`.
    """
    from deepstrata.registry import DATASETS

    shape = tuple(int(s) for s in input_spec.get("shape", ()))
    if not shape:
        raise UserError("the run's model.json records no input shape; train the run again with a current deepstrata")
    generator = torch.Generator().manual_seed(seed)
    if source in NOISE:
        return _noise(source, shape, input_spec, count, generator, reference)
    path = Path(source).expanduser()
    if source in DATASETS:
        raw, what = _dataset_raw(source, input_spec)
    elif path.is_dir():
        raw, what = _image_folder_raw(path, shape, input_spec)
    elif path.is_file():
        raw, what = _file_raw(path, input_spec)
    else:
        raise UserError(
            f"--ood-data '{source}' is not a registered dataset, a noise kind or an existing file{did_you_mean(source, [*NOISE, *DATASETS.names()])} "
            f"(choices: {', '.join(NOISE)}, a dataset from `strata list datasets`, or the path of an IDX file, a .npy array or an image folder)"
        )
    if len(raw) > count:
        raw = raw[torch.randperm(len(raw), generator=generator)[:count].sort().values]
    x = to_model_space(fit_shape(raw, shape, what), input_spec)
    return OutSet(x=x, description=f"{what} ({len(x)} inputs)")


# ------------------------------------------------------------------ raw units and the input map


def _per_feature(value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """A spec's mean/std: a number, or one value per channel/feature, shaped to broadcast over (N, *shape)."""
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.dim() == 1 and len(shape) > 1:
        return t.reshape(-1, *[1] * (len(shape) - 1))
    return t


def to_model_space(raw: torch.Tensor, input_spec: dict[str, Any]) -> torch.Tensor:
    """Raw values (N, *shape) -> model inputs: (raw * scale - mean) / std (the Predictor's map)."""
    shape = tuple(raw.shape[1:])
    scale = float(input_spec.get("scale", 1.0))
    return (raw.float() * scale - _per_feature(input_spec.get("mean", 0.0), shape)) / _per_feature(input_spec.get("std", 1.0), shape)


def to_raw(x: torch.Tensor, input_spec: dict[str, Any]) -> torch.Tensor:
    """Model inputs (N, *shape) -> raw values: the inverse of `to_model_space`."""
    shape = tuple(x.shape[1:])
    scale = float(input_spec.get("scale", 1.0))
    return (x.float() * _per_feature(input_spec.get("std", 1.0), shape) + _per_feature(input_spec.get("mean", 0.0), shape)) / scale


def _full_scale(input_spec: dict[str, Any]) -> float | None:
    value = input_spec.get("raw_max")
    return float(value) if value is not None else None


# ------------------------------------------------------------------ the sources


def _noise(kind: str, shape: tuple[int, ...], spec: dict[str, Any], count: int, generator: torch.Generator, reference: torch.Tensor | None) -> OutSet:
    """Gaussian (mean mid-range, standard deviation the full range, clipped) or uniform noise.

    With a raw range [0, raw_max] the noise is drawn there (Hendrycks & Gimpel 2017: N(0.5, 1)
    clipped to [0, 1] for images in [0, 1]); otherwise per feature within the reference inputs'
    [min, max] in model space.
    """
    full = _full_scale(spec)
    if full is not None:
        low, high = torch.zeros(shape), torch.full(shape, full)
    elif reference is not None and len(reference):
        low, high = reference.min(dim=0).values.float(), reference.max(dim=0).values.float()
    else:
        raise UserError("noise needs a value range: the run's input spec declares no raw_max and no reference inputs were given")
    mid, width = (low + high) / 2, high - low
    if kind == "gaussian":
        values = mid + width * torch.randn(count, *shape, generator=generator)
    else:
        values = low + width * torch.rand(count, *shape, generator=generator)
    values = torch.minimum(torch.maximum(values, low), high)  # clipped to the valid range
    where = f"[0, {full:g}] raw" if full is not None else "the test inputs' per-feature range"
    x = to_model_space(values, spec) if full is not None else values
    what = "Gaussian noise (mid-range mean, full-range std, clipped)" if kind == "gaussian" else "uniform noise"
    return OutSet(x=x, description=f"{what} in {where} ({count} inputs)")


def _dataset_raw(name: str, run_spec: dict[str, Any]) -> tuple[torch.Tensor, str]:
    """A registered dataset's inputs (its official test part if any) in the run's raw units."""
    from deepstrata.data.base import TensorData
    from deepstrata.registry import DATASETS

    data = DATASETS.get(name)()
    if not isinstance(data, TensorData):
        raise UserError(f"--ood-data '{name}': dataset does not give input tensors (it is a {type(data).__name__}); use an image or table dataset")
    x = data.test_x if data.test_x is not None else data.x
    if not x.dtype.is_floating_point:
        raise UserError(f"--ood-data '{name}' holds {x.dtype} inputs (token ids?), not values a classifier of images or tables takes")
    raw = to_raw(x, data.input_spec)
    theirs, ours = _full_scale(data.input_spec), _full_scale(run_spec)
    if theirs is not None and ours is not None:
        raw = raw * (ours / theirs)  # the same share of full scale: 255 grey -> 16 for a digits run
    part = "test part" if data.test_x is not None else "all inputs"
    return raw, f"dataset '{name}' ({part})"


def _eight_bit(a: np.ndarray, run_spec: dict[str, Any]) -> torch.Tensor:
    """8-bit values 0..255 -> the run's raw units (0..raw_max), or [0, 1] when it declares none."""
    return torch.from_numpy(a.astype(np.float32)) / 255.0 * (_full_scale(run_spec) or 1.0)


def _file_raw(path: Path, run_spec: dict[str, Any]) -> tuple[torch.Tensor, str]:
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: not a readable .npy array ({err})") from None
        if a.ndim < 2 or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise DataError(f"{path}: expected a numeric array of shape (N, ...), got {a.dtype} {a.shape}")
        if a.dtype == np.uint8:
            return _eight_bit(a, run_spec), f"{path.name} (8-bit)"
        raw = torch.from_numpy(a.astype(np.float32))
        if not bool(torch.isfinite(raw).all()):
            raise DataError(f"{path}: holds NaN or infinite values")
        return raw, f"{path.name}"
    from deepstrata.data.idx import IMAGE_MAGIC, read_idx

    images = read_idx(path, expect_magic=IMAGE_MAGIC)  # (N, H, W) uint8
    return _eight_bit(images[:, None], run_spec), f"IDX file {path.name}"


def _image_folder_raw(folder: Path, shape: tuple[int, ...], run_spec: dict[str, Any]) -> tuple[torch.Tensor, str]:
    from deepstrata.data.image_folder import _images_in, _read

    if len(shape) != 3:
        raise UserError(f"--ood-data {folder} is an image folder, but the model takes inputs of shape {shape}, not images (C, H, W)")
    square = shape[1] if shape[1] == shape[2] else None
    first: list[tuple[int, int]] = []
    images = [_read(p, mode="L" if shape[0] == 1 else "RGB", image_size=square, first_size=first) for p in _images_in(folder)]
    return _eight_bit(np.stack(images), run_spec), f"image folder {folder.name}"


# ------------------------------------------------------------------ shapes


def fit_shape(raw: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Inputs (N, ...) -> (N, *shape): images (N, C, H, W) / (N, H, W) are converted between grey
    and RGB and resized (bilinear, antialiased); other inputs must have the shape, or as many values."""
    import torch.nn.functional as F

    got = tuple(raw.shape[1:])
    if got == shape:
        return raw
    if len(shape) == 3 and len(got) == 2:
        raw, got = raw[:, None], (1, *got)
    if len(shape) == 3 and len(got) == 3 and got[0] in (1, 3) and shape[0] in (1, 3):
        if got[0] != shape[0]:
            raw = raw.mean(dim=1, keepdim=True) if shape[0] == 1 else raw.expand(-1, 3, -1, -1)
        if tuple(raw.shape[2:]) != shape[1:]:
            raw = F.interpolate(raw.float(), size=shape[1:], mode="bilinear", antialias=True, align_corners=False)
        return raw
    if int(np.prod(got)) == int(np.prod(shape)):
        return raw.reshape(len(raw), *shape)
    raise UserError(
        f"--ood-data {what}: its inputs have shape {got} each, but the model takes {shape}; "
        "give images (resized automatically) or inputs of the model's shape"
    )
