"""Registry-wide checks: every registered learned object keeps scikit-learn's contract and saves safely.

After scikit-learn's common estimator checks: each member supplies a small seeded problem
(`example(generator)`) and these tests, generated from `catalog()["learned"]`, hold every member
to the same rules, so a new calibrator or detector gets them for free.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned import Example, Learned, NotFittedError, load_learned
from deepstrata.registry import REGISTRIES, catalog

NAMES = sorted(catalog()["learned"])


def _cls(name: str) -> type[Learned]:
    return REGISTRIES["learned"].get(name)  # type: ignore[return-value]


def _example(name: str, seed: int = 0) -> Example:
    return _cls(name).example(torch.Generator().manual_seed(seed))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return type(a) is type(b) and a == b


def _output(obj: Learned, example: Example) -> torch.Tensor:
    return getattr(obj, example.method)(*example.inputs)


def test_there_are_members() -> None:
    assert {"temperature_scaling", "class_gaussian"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_a_learned_subclass_with_keyword_only_typed_defaults(name: str) -> None:
    cls = _cls(name)
    assert issubclass(cls, Learned) and cls.registered_as() == name
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    for p in params:
        assert p.kind is p.KEYWORD_ONLY, f"{cls.__name__}.__init__ argument '{p.name}' must be keyword-only"
        assert p.default is not p.empty, f"{cls.__name__}.__init__ argument '{p.name}' needs a default"
        assert p.annotation is not p.empty, f"{cls.__name__}.__init__ argument '{p.name}' needs a type"


@pytest.mark.parametrize("name", NAMES)
def test_init_stores_only_its_arguments(name: str) -> None:
    """(b) __init__ stores the arguments under their own names and learns nothing."""
    cls = _cls(name)
    obj = cls()
    assert not obj.fitted_attributes() and not obj.is_fitted
    assert set(vars(obj)) == set(obj.get_params())
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    assert obj.get_params() == defaults
    assert cls(**obj.get_params()).get_params() == obj.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_learns_underscore_attributes(name: str) -> None:
    """(b) fit returns self, sets `_` attributes (tensors or JSON data) and leaves its inputs alone."""
    example = _example(name)
    before = [a.clone() if isinstance(a, torch.Tensor) else a for a in example.fit_args]
    obj = _cls(name)()
    assert obj.fit(*example.fit_args) is obj
    assert obj.is_fitted and obj.fitted_attributes()
    for a, b in zip(example.fit_args, before, strict=True):
        assert _same(a, b), "fit modified its inputs"
    out = _output(obj, example)
    assert isinstance(out, torch.Tensor) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", NAMES)
def test_refit_is_deterministic(name: str) -> None:
    """(a) fitting again, on the same object or a fresh one, gives identical attributes."""
    example = _example(name)
    first = _cls(name)().fit(*example.fit_args).fitted_attributes()
    obj = _cls(name)().fit(*_example(name, seed=1).fit_args)  # fitted on other data first
    again = obj.fit(*example.fit_args).fitted_attributes()
    assert set(first) == set(again)
    for key in first:
        assert _same(first[key], again[key]), f"{name}.{key} differs between two fits on the same data"


@pytest.mark.parametrize("name", NAMES)
def test_use_before_fit_raises_not_fitted(name: str) -> None:
    """(c) the output method and save refuse an unfitted object, naming the fit call."""
    cls = _cls(name)
    example = _example(name)
    with pytest.raises(NotFittedError, match=rf"{cls.__name__} is not fitted yet; call fit\("):
        _output(cls(), example)
    with pytest.raises(NotFittedError):
        cls().save("unused")
    assert issubclass(NotFittedError, UserError)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    """(d) a reloaded object gives identical outputs and attributes; nothing is pickled."""
    example = _example(name)
    obj = _cls(name)().fit(*example.fit_args)
    obj.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.safetensors"]
    ways = (load_learned(tmp_path / f"{name}.json"), load_learned(tmp_path), _cls(name).load(tmp_path), Learned.load(tmp_path))
    for loaded in ways:
        assert type(loaded) is type(obj)
        assert loaded.get_params() == obj.get_params()
        assert set(loaded.fitted_attributes()) == set(obj.fitted_attributes())
        for key, value in obj.fitted_attributes().items():
            assert _same(value, getattr(loaded, key)), f"{name}.{key} changed through save/load"
        assert torch.equal(_output(loaded, example), _output(obj, example))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pt"))


@pytest.mark.parametrize("name", NAMES)
def test_saved_files_hold_only_json_and_safetensors(name: str, tmp_path: Path) -> None:
    """(f) the JSON parses as plain JSON; the weights file is a bare safetensors file of `_` tensors."""
    from safetensors import safe_open

    obj = _cls(name)().fit(*_example(name).fit_args)
    obj.save(tmp_path)
    spec = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    assert spec["learned"] == name and spec["params"] == obj.get_params()
    assert json.loads(json.dumps(spec, allow_nan=False)) == spec

    raw = (tmp_path / f"{name}.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])  # safetensors: u64 length, JSON header, raw bytes
    assert set(header) - {"__metadata__"} == set(spec["tensors"])
    with safe_open(str(tmp_path / f"{name}.safetensors"), framework="pt") as fh:
        assert sorted(fh.keys()) == spec["tensors"]
    tensors = {k for k, v in obj.fitted_attributes().items() if isinstance(v, torch.Tensor)}
    assert set(spec["tensors"]) == tensors
    assert set(spec["fitted"]) == set(obj.fitted_attributes()) - tensors


@pytest.mark.parametrize("name", NAMES)
def test_wrong_inputs_raise_user_errors(name: str) -> None:
    """(e) wrong shapes, dtypes, sizes and types give a UserError naming the call, not a torch error."""
    cls = _cls(name)
    example = _example(name)
    assert example.invalid_fit_args and example.invalid_inputs
    for args in example.invalid_fit_args:
        with pytest.raises(UserError, match=rf"{cls.__name__}\.fit"):
            cls().fit(*args)
    fitted = cls().fit(*example.fit_args)
    for args in example.invalid_inputs:
        with pytest.raises(UserError, match=rf"{cls.__name__}\."):
            getattr(fitted, example.method)(*args)
    floats = [i for i, a in enumerate(example.fit_args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    for i in floats:
        bad = list(example.fit_args)
        bad[i] = bad[i].clone()
        bad[i].view(-1)[0] = float("nan")
        with pytest.raises(UserError, match="NaN or infinite"):
            cls().fit(*bad)
