"""A finished run's model with the preprocessing it was trained with.

Problem: a saved model is useless to a user who must remember how its inputs were scaled,
shaped and tokenised during training.
Idea: `model.json` records the input spec (shape, scale, per-feature mean/std, replayed
transforms, vocabulary); the Predictor maps raw inputs (arrays, image files, text) through
it and hands the model inputs to the run's task, which owns what an output means and returns
readable predictions (class names, probabilities, values, text).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError


class Predictor:
    """A loaded model plus the input preprocessing it was trained with; the task reads the outputs."""

    def __init__(self, model: torch.nn.Module, spec: dict[str, Any]):
        from deepstrata.tasks.base import task_class

        self.model = model.eval()
        self.spec = spec
        self.input_spec = spec.get("input_spec", {})
        self.class_names = spec.get("class_names")
        task = spec.get("task") or "classification"
        self.task_name = task.get("name") if isinstance(task, dict) else str(task)
        # The task turns model outputs into readable rows (labels, values, text), so the
        # Predictor, the report and a server never test which task this is.
        self.task = task_class(self.task_name).for_inference(self.model, spec).eval()

    def preprocess(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw inputs (as the dataset stores them, e.g. 0..16 grey levels) -> model inputs (N, *shape)."""
        x = torch.as_tensor(np.asarray(raw), dtype=torch.float32)
        shape = tuple(self.input_spec.get("shape", x.shape[1:]))
        if tuple(x.shape) == shape or x.numel() == int(np.prod(shape)):
            x = x.reshape(1, *shape)
        elif x.numel() % int(np.prod(shape)) == 0:
            x = x.reshape(-1, *shape)
        else:
            raise UserError(f"input of shape {tuple(x.shape)} does not fit the model's input shape {shape}")
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

    @torch.no_grad()
    def predict(self, raw: np.ndarray | torch.Tensor, *, top_k: int = 1) -> list[dict[str, Any]]:
        """One dict per input: {"label", "class_name", "probability"} or {"value"}, as the task reads it."""
        if self.task.reads != "arrays":
            raise UserError(self.task.predict_hint)
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        return self.task.predict_rows(self.preprocess(raw), class_names=self.class_names, top_k=top_k)

    @torch.no_grad()
    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Text-reading runs (seq2seq on characters): each text -> {"output": decoded text}."""
        return self.task.predict_text(list(texts))

    def predict_files(self, paths: Sequence[str | Path], *, top_k: int = 1) -> list[dict[str, Any]]:
        """Predict from .npy arrays or image files (converted to grey, resized to the input size).

        For a seq2seq run on characters each argument is the input text itself ("3 March 1987").
        """
        if self.task.reads == "text":
            texts = [str(p) for p in paths]
            return [{"input": t, **r} for t, r in zip(texts, self.predict_text(texts))]
        if self.task.reads != "arrays":
            raise UserError(self.task.predict_hint)
        results = []
        for path in paths:
            rows = self.predict(self.read_input(Path(path)), top_k=top_k)
            for i, r in enumerate(rows):
                # Several rows of one array carry their index, so identical labels stay traceable.
                results.append({"input": str(path), **({"row": i} if len(rows) > 1 else {}), **r})
        return results

    def read_input(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise UserError(f"input file '{path}' does not exist")
        if path.suffix == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as err:
                raise UserError(f"{path}: not a plain .npy array ({err})") from None
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"):
            from PIL import Image, UnidentifiedImageError

            shape = self.input_spec.get("shape", [1, 28, 28])
            try:
                img = Image.open(path).convert("L" if shape[0] == 1 else "RGB").resize((shape[-1], shape[-2]))
            except (UnidentifiedImageError, OSError) as err:
                raise UserError(f"{path}: cannot read the image ({err})") from None
            arr = np.asarray(img, dtype=np.float32) / 255.0 * float(self.input_spec.get("raw_max", 255.0))
            return arr if arr.ndim == 2 else arr.transpose(2, 0, 1)
        raise UserError(f"{path}: unsupported input type '{path.suffix}'; give .npy arrays or image files (.png, .jpg)")
