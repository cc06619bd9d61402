"""What travels inside an exported file: the run's model description and how to feed it.

Problem: an ONNX or `.pt2` file found without its run directory should still tell its user
how raw inputs become model inputs, what the outputs mean and where it came from.
Idea: four JSON entries, the same in both formats: `model` (the run's model.json: architecture,
arguments, task, input spec, class names), `preprocessing` (the arithmetic `Predictor.preprocess`
applies, as numbers), `signature` (input and output names, dtypes, shapes; -1 is the batch) and
`source` (recipe, run directory, the tool chain that derived it, deepstrata version).
"""

from __future__ import annotations

import json
from typing import Any

from deepstrata.export.signature import Signature


def preprocessing(input_spec: dict[str, Any]) -> dict[str, Any]:
    """The steps from a raw input (as the dataset stores it) to the model input, in order.

    `model_input = ((raw * scale - mean) / std - normalize.mean) / normalize.std`, every term
    broadcast per channel or feature when it is a list; a term left out is the identity.
    """
    steps: dict[str, Any] = {
        "formula": "((raw * scale - mean) / std - normalize_mean) / normalize_std",
        "scale": input_spec.get("scale", 1.0),
        "mean": input_spec.get("mean", 0.0),
        "std": input_spec.get("std", 1.0),
    }
    norm = input_spec.get("normalize")
    steps["normalize_mean"] = norm["mean"] if norm else 0.0
    steps["normalize_std"] = norm["std"] if norm else 1.0
    if "raw_max" in input_spec:
        steps["raw_max"] = input_spec["raw_max"]
    for key in ("vocab", "tokenizer"):
        if key in input_spec:
            steps[key] = input_spec[key] if key == "tokenizer" else f"{len(input_spec[key])} entries in model.vocab"
    return steps


def export_metadata(spec: dict[str, Any], signature: Signature, source: dict[str, Any]) -> dict[str, str]:
    """name -> JSON text, ready for ONNX metadata_props or the .pt2 extra file."""
    entries = {
        "model": spec,
        "preprocessing": preprocessing(dict(spec.get("input_spec") or {})),
        "signature": signature.to_dict(),
        "source": source,
    }
    return {k: json.dumps(v, sort_keys=True) for k, v in entries.items()}
