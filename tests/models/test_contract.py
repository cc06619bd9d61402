"""Registry-wide model contract: generated from the registry, so a new model is tested on arrival.

Every registered model builds from its registered `example`, runs forward and backward on a
tiny batch without NaNs, and round-trips through model.json + model.safetensors with
identical outputs. Classification backbones also honour the Backbone interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata.models.base import Backbone
from deepstrata.registry import MODELS, catalog
from deepstrata.run.artifact import load_model, save_model

MODEL_NAMES = sorted(catalog()["model"])


def example_batch(meta: dict[str, Any], batch: int = 2) -> torch.Tensor:
    example = meta["example"]
    shape = (batch, *example["input_shape"])
    gen = torch.Generator().manual_seed(0)
    if example.get("dtype") == "long":
        return torch.randint(0, example.get("vocab_size", 16), shape, generator=gen)
    return torch.rand(shape, generator=gen)


def example_extras(meta: dict[str, Any]) -> list[torch.Tensor]:
    """Inputs after the first: a graph model's example gives its `edge_index` (2, E)."""
    edges = meta["example"].get("edge_index")
    return [] if edges is None else [torch.tensor(edges, dtype=torch.long)]


def first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return next(v for v in out.values() if isinstance(v, torch.Tensor))
    return next(v for v in out if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_registers_an_example(name: str) -> None:
    meta = MODELS.meta(name)
    assert "example" in meta and "input_shape" in meta["example"], f"model '{name}' must register example=..."


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_finite(name: str) -> None:
    meta = MODELS.meta(name)
    torch.manual_seed(0)
    model = MODELS.get(name)(**meta["example"].get("kwargs", {}))
    out = first_tensor(model(example_batch(meta), *example_extras(meta)))
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    meta = MODELS.meta(name)
    kwargs = meta["example"].get("kwargs", {})
    torch.manual_seed(0)
    model = MODELS.get(name)(**kwargs).eval()
    x = example_batch(meta)
    save_model(model, tmp_path, {"architecture": name, "kwargs": kwargs})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        extras = example_extras(meta)
        torch.testing.assert_close(first_tensor(loaded(x, *extras)), first_tensor(model(x, *extras)), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if issubclass(type(MODELS.get(n)(**MODELS.meta(n)["example"].get("kwargs", {}))), Backbone)])
def test_backbone_interface(name: str) -> None:
    meta = MODELS.meta(name)
    model = MODELS.get(name)(**meta["example"].get("kwargs", {})).eval()
    x = example_batch(meta)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (x.shape[0], model.num_features)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        model.reset_head(3)
        assert model(x).shape == (x.shape[0], 3)
