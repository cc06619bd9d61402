"""The saved model: `model.safetensors` + `model.json`, and nothing that runs code on load.

Problem: `torch.save(model)` pickles Python objects; loading such a file from someone else
can execute arbitrary code, and it breaks when the class moves.
Idea: store only tensors (safetensors) plus a JSON description: the registered architecture
name, its constructor arguments, the deepstrata version and the input spec. Loading looks the
architecture up in the registry, builds it from the JSON arguments and copies the tensors in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.run.atomic import atomic_write, atomic_write_text

WEIGHTS = "model.safetensors"
SPEC = "model.json"


def save_model(model: nn.Module, directory: str | Path, spec: dict[str, Any]) -> Path:
    """Write weights and `spec` (architecture, kwargs, task, input_spec, ...) into `directory`."""
    from safetensors.torch import save_file

    from deepstrata import __version__

    directory = Path(directory)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS, lambda p: save_file(weights, str(p), metadata={"format": "pt"}))
    full = {"deepstrata_version": __version__, **spec}
    atomic_write_text(directory / SPEC, json.dumps(full, indent=2, sort_keys=True) + "\n")
    return directory


def read_spec(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / SPEC
    if not path.is_file():
        raise UserError(f"'{directory}' holds no {SPEC}; pass a finished run directory (runs/<recipe>/<time>/)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from model.json + model.safetensors alone; returns (model, spec)."""
    from safetensors.torch import load_file

    from deepstrata.registry import MODELS

    directory = Path(directory)
    spec = read_spec(directory)
    model = MODELS.get(spec["architecture"])(**spec["kwargs"])
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise UserError(f"'{directory}' holds {SPEC} but no {WEIGHTS}; the run did not finish")
    model.load_state_dict(load_file(str(weights_path), device=str(map_location)))
    model.eval()
    return model, spec
