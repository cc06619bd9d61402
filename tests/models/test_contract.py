"""Registry-wide model contract: generated from the registry, so a new model is tested on arrival.

Every registered model builds from its registered `example`, runs forward and backward on a
tiny batch without NaNs, and round-trips through model.json + model.safetensors with
identical outputs. Classification backbones also honour the Backbone interface (features
before pooling in the layout they declare, forward == forward_head(forward_features), pooled
pre-logits, intermediate stages, reset_head), and keep the state-dict names recorded in
backbone_state_keys.json, so model.safetensors files written before keep loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata.models.base import Backbone
from deepstrata.registry import MODELS, catalog
from deepstrata.run.artifact import load_model, save_model

MODEL_NAMES = sorted(catalog()["model"])
FEATURE_RANK = {"NCHW": 4, "NLC": 3, "NC": 2}
STATE_KEYS = json.loads((Path(__file__).parent / "backbone_state_keys.json").read_text())


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors", "model.safetensors.sha256"]
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        extras = example_extras(meta)
        torch.testing.assert_close(first_tensor(loaded(x, *extras)), first_tensor(model(x, *extras)), rtol=0, atol=0)


BACKBONES = [n for n in MODEL_NAMES if issubclass(type(MODELS.get(n)(**MODELS.meta(n)["example"].get("kwargs", {}))), Backbone)]


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_interface(name: str) -> None:
    meta = MODELS.meta(name)
    model = MODELS.get(name)(**meta["example"].get("kwargs", {})).eval()
    x = example_batch(meta)
    n = x.shape[0]
    with torch.no_grad():
        feats = model.forward_features(x)
        assert model.feature_format in FEATURE_RANK, f"{name}: feature_format must be one of {sorted(FEATURE_RANK)}"
        assert feats.dim() == FEATURE_RANK[model.feature_format] and feats.shape[0] == n, f"{name} declares {model.feature_format}, gives {tuple(feats.shape)}"
        torch.testing.assert_close(model.forward_head(feats), model(x), rtol=0, atol=0)
        assert model.forward_head(feats, pre_logits=True).shape == (n, model.num_features)
        stages = model.forward_intermediates(x)
        assert stages and all(isinstance(t, torch.Tensor) and t.shape[0] == n for t in stages)
        assert len(model.forward_intermediates(x, 1)) == 1
        torch.testing.assert_close(model.forward_intermediates(x, [-1])[0], stages[-1], rtol=0, atol=0)
        width = model(x).shape[1]
        model.reset_head(width + 1)
        assert model(x).shape == (n, width + 1)


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
def test_backbone_state_dict_keys_unchanged(name: str) -> None:
    """Recorded before forward_features stopped pooling: a run saved then must still load by name."""
    torch.manual_seed(0)
    model = MODELS.get(name)(**MODELS.meta(name)["example"].get("kwargs", {}))
    assert list(model.state_dict()) == STATE_KEYS[name]


def test_intermediate_indices_follow_timm() -> None:
    torch.manual_seed(0)
    model = MODELS.get("resnet")(num_classes=3, layers=[1, 1, 1], widths=[4, 8, 16]).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        every = model.forward_intermediates(x)
        assert [t.shape[1:] for t in every] == [(4, 8, 8), (8, 4, 4), (16, 2, 2)]
        torch.testing.assert_close(every[-1], model.forward_features(x), rtol=0, atol=0)
        assert [t.shape[1] for t in model.forward_intermediates(x, 2)] == [8, 16]  # n = the last n stages
        assert [t.shape[1] for t in model.forward_intermediates(x, [2, 0, -3])] == [4, 16]  # stage order, once each
        with pytest.raises(ValueError, match="stage index 3 is out of range for 3 stages"):
            model.forward_intermediates(x, [3])
        with pytest.raises(ValueError, match="the last 4 stages, but it has 3"):
            model.forward_intermediates(x, 4)
    assert not model.layer1._forward_hooks  # the hooks are removed again
