"""Explanations over HTTP: where in an uploaded image the served model found its evidence.

Problem: a playground that only shows "7, 93%" cannot show a learner, or a user debugging a
wrong answer, which strokes the prediction rests on; the attribution methods live in
`deepstrata.explain` and need the model's gradients, which ONNX Runtime does not give.
Idea: `POST /v2/models/NAME/explain?method=grad_cam` (an extension beside the protocol's
routes, like `/predict`) takes an image, makes it a model input exactly as `/predict` does (the
run's Predictor, so the same preprocessing), explains the predicted class with any registered
explainer through the run's PyTorch model (whichever backend serves `/infer`), and answers
the prediction, the model input as the model saw it, and the attribution reduced to one
non-negative map over the input's positions (|a| summed over channels), scaled to 0..1, as
plain JSON the page draws over the input. A method that cannot explain this model (Grad-CAM on
an MLP) is a 400 that says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepstrata.errors import UserError

MAX_MAP_PIXELS = 512 * 512  # the map travels as JSON numbers; larger inputs are refused


def explain_image(predictor: Any, body: bytes, *, method: str) -> dict[str, Any]:
    """The predicted class of one encoded image and `method`'s map of it: {"prediction", "method", "height", "width", "input", "map"}."""
    import torch

    from deepstrata.explain.base import explainer_name, make_explainer

    method = explainer_name(method, who="/explain")
    explainer = make_explainer(method)
    raw, warnings = predictor.image_bytes_input(body)
    x = predictor.preprocess(raw)
    if x.dim() != 4:
        raise UserError(f"/explain draws maps over images (N, C, H, W); this model reads inputs of shape {tuple(x.shape[1:])}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height * width > MAX_MAP_PIXELS:
        raise UserError(f"/explain answers maps of at most {MAX_MAP_PIXELS} pixels; this model's inputs are {height}x{width}")
    model = predictor.model
    reason = explainer.why_not(model, x)
    if reason is not None:
        raise UserError(f"{method} cannot explain this model: {reason}")
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
    target = probs.argmax(dim=1)
    attribution = explainer.attribute(model, x, target).detach()
    heat = attribution.abs().expand(1, -1, height, width).sum(dim=1)[0] if attribution.dim() == 4 else None
    if heat is None:
        raise UserError(f"{method} gives attributions of shape {tuple(attribution.shape)}, not a map over the image's positions")
    seen = x[0].mean(dim=0)
    label = int(target[0])
    names = predictor.class_names
    return {
        "prediction": {"label": label, "class_name": names[label] if names else str(label), "probability": float(probs[0, label]), "warnings": warnings},
        "method": method,
        "height": height,
        "width": width,
        "input": _unit(seen).round(4).ravel().tolist(),
        "map": _unit(heat).round(4).ravel().tolist(),
    }


def _unit(values: Any) -> np.ndarray:
    """Min-max scaled to 0..1 (a constant map becomes zeros)."""
    arr = values.double().numpy()
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
