"""A finished run's model with the preprocessing it was trained with.

Problem: a saved model is useless to a user who must remember how its inputs were scaled,
shaped and tokenised during training.
Idea: `model.json` records the input spec (shape, scale, per-feature mean/std, replayed
transforms, vocabulary); the Predictor maps raw inputs (arrays, image files, text) through
it and hands the model inputs to the run's task, which owns what an output means and returns
readable predictions (class names, probabilities, values, text). An image for a digit model is
first made the way the training digits were (`data.image_fit`: polarity, levels, crop, scale,
centre) and checked against them (`data.input_check`): a row carries "warnings" when its input
looks unlike anything the model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.data import input_check
from deepstrata.data.image_fit import ImageFit, fit_image, stretch_levels, to_light_ink
from deepstrata.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


class Predictor:
    """A loaded model plus the input preprocessing it was trained with; the task reads the outputs."""

    def __init__(self, model: torch.nn.Module, spec: dict[str, Any]):
        from deepstrata.tasks.base import task_class

        self.model = model.eval()
        self.spec = spec
        self.input_spec = spec.get("input_spec", {})
        self.class_names = spec.get("class_names")
        from deepstrata.config import task_mapping

        self.task_name = str((task_mapping(spec.get("task")) or {"name": "classification"})["name"])
        # The task turns model outputs into readable rows (labels, values, text), so the
        # Predictor, the report and a server never test which task this is.
        try:
            cls = task_class(self.task_name)
        except UserError as err:  # a damaged or foreign model.json: say which file
            raise UserError(f"model.json: {err}; restore the run's model.json or train again") from None
        self.task = cls.for_inference(self.model, spec).eval()
        # How the dataset's images were made, and its training images' statistics: model.json's
        # input_spec, or for runs written before those keys the dataset's registry metadata.
        meta = _dataset_meta(spec.get("dataset"))
        fit = self.input_spec.get("image_fit", meta.get("image_fit"))
        self.image_fit = ImageFit.from_dict(fit) if fit else None
        self.raw_stats = self.input_spec.get("raw_stats", meta.get("raw_stats", {}))

    def preprocess(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw inputs (as the dataset stores them, e.g. 0..16 grey levels) -> model inputs (N, *shape)."""
        x = torch.as_tensor(self._batch(raw))
        shape = x.shape[1:]
        x = x * float(self.input_spec.get("scale", 1.0))
        # mean/std: numbers, or per-feature / per-channel lists (statistics fitted on the training split)
        mean, std = (torch.as_tensor(self.input_spec.get(k, d), dtype=torch.float32) for k, d in (("mean", 0.0), ("std", 1.0)))
        if mean.dim() == 1 and len(shape) > 1:
            mean, std = mean.reshape(-1, *[1] * (len(shape) - 1)), std.reshape(-1, *[1] * (len(shape) - 1))
        x = (x - mean) / std
        norm = self.input_spec.get("normalize")  # a `normalize` transform from the recipe's data.augment
        if norm:
            view = (-1, *[1] * (len(shape) - 1))
            x = (x - torch.tensor(norm["mean"]).reshape(view)) / torch.tensor(norm["std"]).reshape(view)
        return x

    def _batch(self, raw: np.ndarray | torch.Tensor) -> np.ndarray:
        """Raw inputs -> a float32 batch (N, *shape) of the model's input shape."""
        x = np.asarray(raw, dtype=np.float32)
        shape = tuple(self.input_spec.get("shape", x.shape[1:]))
        if tuple(x.shape) == shape or x.size == int(np.prod(shape)):
            return x.reshape(1, *shape)
        if x.size % int(np.prod(shape)) == 0:
            return x.reshape(-1, *shape)
        raise UserError(f"input of shape {tuple(x.shape)} does not fit the model's input shape {shape}")

    @property
    def _reads_digits(self) -> bool:
        """A grey square-image model whose dataset declared how its images were made."""
        shape = list(self.input_spec.get("shape", []))
        fit = self.image_fit
        return fit is not None and len(shape) == 3 and shape[0] == 1 and shape[1] == shape[2] == fit.frame

    @property
    def _raw_max(self) -> float:
        return float(self.input_spec.get("raw_max", 1.0))

    def prepare(self, raw: np.ndarray | torch.Tensor) -> tuple[np.ndarray, list[list[str]]]:
        """Raw arrays -> (batch in the dataset's format, warnings per row).

        For a digit model each image on a light background is inverted and each image whose
        ink is not already fitted is cropped, scaled and centred (dataset images pass
        unchanged); values keep their scale, and a range or statistics check adds warnings.
        """
        batch = self._batch(raw).copy()  # never write into the caller's array
        warnings: list[list[str]] = [[] for _ in batch]
        if "raw_max" not in self.input_spec or batch.ndim != 4:
            return batch, warnings
        what = f"0..{self._raw_max:g} {'grey levels' if batch.shape[1] == 1 else 'values'}"
        for i, image in enumerate(batch):
            warnings[i] = input_check.value_warnings(image, self._raw_max, what)
            if not self._reads_digits:
                continue
            given, _ = to_light_ink(image[0] / self._raw_max)  # (H, W), ink bright
            fitted = fit_image(given, self.image_fit)
            if not warnings[i]:  # statistics of a wrongly scaled input would only repeat the range warning
                warnings[i] = input_check.statistics_warnings(given, fitted, self.raw_stats, self.image_fit)
            batch[i, 0] = self._ink_out(fitted) * self._raw_max
        return batch, warnings

    def _ink_out(self, fitted: np.ndarray) -> np.ndarray:
        """The pipeline works with bright ink; a dataset of dark ink gets it back."""
        return 1.0 - fitted if self.image_fit.ink == "dark" else fitted

    @torch.no_grad()
    def predict(self, raw: np.ndarray | torch.Tensor, *, top_k: int = 1) -> list[dict[str, Any]]:
        """One dict per input: {"label", "class_name", "probability"} or {"value"}, as the task reads it,
        plus "warnings" (a list of sentences) when an input looks unlike the training data."""
        if self.task.reads != "arrays":
            raise UserError(self.task.predict_hint)
        batch, warnings = self.prepare(raw)
        return self._rows(batch, warnings, top_k)

    def _rows(self, batch: np.ndarray, warnings: list[list[str]], top_k: int) -> list[dict[str, Any]]:
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        rows = self.task.predict_rows(self.preprocess(batch), class_names=self.class_names, top_k=top_k)
        return [{**row, "warnings": w} if w else row for row, w in zip(rows, warnings)]

    @torch.no_grad()
    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Text-reading runs (seq2seq on characters): each text -> {"output": decoded text}."""
        return self.task.predict_text(list(texts))

    def predict_files(self, paths: Sequence[str | Path], *, top_k: int = 1) -> list[dict[str, Any]]:
        """Predict from .npy arrays or image files (made like the training images, see `read_image`).

        For a seq2seq run on characters each argument is the input text itself ("3 March 1987").
        """
        if self.task.reads == "text":
            texts = [str(p) for p in paths]
            return [{"input": t, **r} for t, r in zip(texts, self.predict_text(texts))]
        if self.task.reads != "arrays":
            raise UserError(self.task.predict_hint)
        results = []
        for path in map(Path, paths):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                image, warnings = self.read_image(path)
                rows = self._rows(self._batch(image), [warnings], top_k)
            else:
                rows = self.predict(self.read_input(path), top_k=top_k)
            for i, r in enumerate(rows):
                # Several rows of one array carry their index, so identical labels stay traceable.
                results.append({"input": str(path), **({"row": i} if len(rows) > 1 else {}), **r})
        return results

    def read_input(self, path: Path) -> np.ndarray:
        """A .npy array as stored, or an image file converted to the model's raw input (see `read_image`)."""
        path = Path(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return self.read_image(path)[0]
        if not path.is_file():
            raise UserError(f"input file '{path}' does not exist")
        if path.suffix == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as err:
                raise UserError(f"{path}: not a plain .npy array ({err})") from None
        raise UserError(f"{path}: unsupported input type '{path.suffix}'; give .npy arrays or image files (.png, .jpg)")

    def read_image(self, path: Path) -> tuple[np.ndarray, list[str]]:
        """An image file -> (raw input in the dataset's units: (H, W) grey or (3, H, W) colour, warnings).

        A digit model's image is made the way its dataset was (docs/api.md, "What is done to
        an image"): grey; inverted when its background (the outer ring's median) is light;
        levels stretched (background 0, brightest ink full); cropped to the ink, scaled so
        the longer side fills the dataset's box, centred; times raw_max. Other models get
        the image resized to their input size.
        """
        if not path.is_file():
            raise UserError(f"input file '{path}' does not exist")
        return self.image_input(_open(path))

    def predict_image_bytes(self, data: bytes, *, top_k: int = 1) -> list[dict[str, Any]]:
        """Predict from an encoded image (PNG, JPEG, ...) held in memory: a server's upload or a canvas."""
        batch, warnings = self.image_bytes_input(data)
        return self._rows(batch, [warnings], top_k)

    def image_bytes_input(self, data: bytes) -> tuple[np.ndarray, list[str]]:
        """An encoded image held in memory -> (a raw batch of one, (1, *shape), warnings); `preprocess` makes it a model input."""
        import io

        if self.task.reads != "arrays":
            raise UserError(self.task.predict_hint)
        image, warnings = self.image_input(_open(io.BytesIO(data), what="the uploaded image"))
        return self._batch(image), warnings

    def image_input(self, img: Any) -> tuple[np.ndarray, list[str]]:
        """An opened PIL image -> (raw input in the dataset's units, warnings); see `read_image`."""
        shape = self.input_spec.get("shape", [1, 28, 28])
        if not self._reads_digits:
            arr = np.asarray(img.convert("L" if shape[0] == 1 else "RGB").resize((shape[-1], shape[-2])), dtype=np.float32)
            arr = arr / 255.0 * self._raw_max
            return (arr if arr.ndim == 2 else arr.transpose(2, 0, 1)), []
        grey, rgb = _grey(img)
        given, _ = to_light_ink(grey)
        fitted = fit_image(stretch_levels(given), self.image_fit)
        warnings = input_check.statistics_warnings(given, fitted, self.raw_stats, self.image_fit, rgb=rgb)
        return self._ink_out(fitted) * self._raw_max, warnings  # (frame, frame), as a grey image file always read


MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused before they are decoded


def _open(source: Any, mode: str | None = None, *, what: str | None = None):
    """A decoded PIL image from a path or a binary file object; unreadable or huge images are UserErrors."""
    from PIL import Image, UnidentifiedImageError

    what = what or str(source)
    try:
        img = Image.open(source)
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise UserError(f"{what}: {img.width}x{img.height} pixels is too large to read (at most {MAX_IMAGE_PIXELS:,} pixels)")
        img.load()
        return img.convert(mode) if mode else img
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as err:
        raise UserError(f"{what}: cannot read the image ({err})") from None


def _grey(img) -> tuple[np.ndarray, np.ndarray | None]:
    """A PIL image -> (grey (H, W) in 0..1, the RGB (H, W, 3) in 0..1 when it has colour).

    Transparent pixels take the grey that contrasts with the drawn ones (a pen stroke on a
    transparent canvas is the drawing, whatever its colour).
    """
    if img.mode.startswith("I"):  # 16-bit grey (scanners): PIL's RGBA conversion would clip it
        return np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0), None
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as PIL's "L"
    if alpha.min() < 1.0:
        drawn = grey[alpha[..., 0] > 0.5]
        paper = 0.0 if drawn.size and drawn.mean() > 0.5 else 1.0
        grey = grey * alpha[..., 0] + paper * (1.0 - alpha[..., 0])
        rgb = rgb * alpha + paper * (1.0 - alpha)
    coloured = img.mode not in ("1", "L", "LA", "F")
    return grey, (rgb if coloured else None)


def _dataset_meta(name: str | None) -> dict[str, Any]:
    """A dataset's registry metadata (image_fit, raw_stats); {} for a name no longer registered."""
    from deepstrata.registry import DATASETS

    if not name:
        return {}
    try:
        return DATASETS.meta(name)
    except UserError:
        return {}
