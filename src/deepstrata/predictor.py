"""A finished run's model with the preprocessing it was trained with.

Problem: a saved model is useless to a user who must remember how its inputs were scaled,
shaped and tokenised during training.
Idea: `model.json` records the input spec (shape, scale, per-feature mean/std, replayed
transforms, vocabulary); the Predictor maps raw inputs (arrays, image files, text) through
it, runs the model, and returns readable predictions (class names, probabilities, text).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError


class Predictor:
    """A loaded model plus the input preprocessing it was trained with."""

    def __init__(self, model: torch.nn.Module, spec: dict[str, Any]):
        self.model = model.eval()
        self.spec = spec
        self.input_spec = spec.get("input_spec", {})
        self.class_names = spec.get("class_names")
        self.task = spec.get("task", "classification")

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
    def predict(self, raw: np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
        """One dict per input: {"label", "class_name", "probability"} or {"value"}."""
        if self.task == "generative":
            raise UserError("this run is a generative model: it samples rather than predicts; use `strata sample RUN_DIR --n 16`")
        if self.task == "seq2seq":
            raise UserError("this run maps text to text: pass the texts themselves, e.g. `strata predict RUN_DIR \"3 March 1987\"`")
        x = self.preprocess(raw)
        out = self.model(x)
        if self.task != "classification":
            return [{"value": v.tolist()} for v in out]
        probs = torch.softmax(out, dim=1)
        conf, label = probs.max(dim=1)
        names = self.class_names or [str(i) for i in range(probs.shape[1])]
        return [{"label": int(i), "class_name": names[int(i)], "probability": float(p)} for i, p in zip(label, conf)]

    @torch.no_grad()
    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Seq2seq runs on characters: each text -> {"output": decoded text}, with the run's saved vocabulary."""
        from deepstrata.tasks.seq2seq import greedy_decode

        spec = self.input_spec
        vocab = spec.get("vocab")
        if self.task != "seq2seq" or not vocab or spec.get("tokens") != "characters":
            raise UserError(f"text input needs a seq2seq run on characters; this run's task is '{self.task}'")
        index = {c: i for i, c in enumerate(vocab)}
        length, pad = int(spec["max_source_len"]), int(spec["pad_id"])
        rows = []
        for text in texts:
            if not 0 < len(text) <= length:
                raise UserError(f"input '{text}' has {len(text)} characters; this model reads 1 to {length}")
            ids = [index.get(c, int(spec["unk_id"])) for c in text]
            rows.append(ids + [pad] * (length - len(ids)))
        tokens, _ = greedy_decode(
            self.model, torch.tensor(rows), max_len=int(spec["max_target_len"]) - 1, bos_id=int(spec["bos_id"]), eos_id=int(spec["eos_id"]), pad_id=pad
        )
        specials = {pad, int(spec["bos_id"])}
        outputs = []
        for row in tokens.tolist():
            chars = []
            for t in row:
                if t == int(spec["eos_id"]):
                    break
                if t not in specials:
                    chars.append(vocab[t])
            outputs.append({"output": "".join(chars)})
        return outputs

    def predict_files(self, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Predict from .npy arrays or image files (converted to grey, resized to the input size).

        For a seq2seq run on characters each argument is the input text itself ("3 March 1987").
        """
        if self.task == "seq2seq":
            texts = [str(p) for p in paths]
            return [{"input": t, **r} for t, r in zip(texts, self.predict_text(texts))]
        results = []
        for path in paths:
            raw = self.read_input(Path(path))
            for r in self.predict(raw):
                results.append({"input": str(path), **r})
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
