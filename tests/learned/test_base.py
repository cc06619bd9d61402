"""The Learned base: parameters from the signature, and loading that refuses bad files in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.learned import Learned, load_learned
from deepstrata.learned.base import check_tensor
from deepstrata.learned.class_gaussian import ClassConditionalGaussian
from deepstrata.learned.temperature import TemperatureScaler


def _saved(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    ClassConditionalGaussian(eps=1e-4).fit(*ClassConditionalGaussian.example(g).fit_args).save(tmp_path)
    return tmp_path / "class_gaussian.json"


def assert_one_line_error(path: Path | str, match: str) -> str:
    with pytest.raises(UserError) as info:
        load_learned(path)
    message = str(info.value)
    assert "\n" not in message and match in message, message
    return message


def test_get_params_and_repr_read_the_signature() -> None:
    scaler = TemperatureScaler(max_temperature=10.0)
    assert scaler.get_params() == {"min_temperature": 0.01, "max_temperature": 10.0, "tol": 1e-7}
    assert repr(scaler) == "TemperatureScaler(min_temperature=0.01, max_temperature=10.0, tol=1e-07)"


def test_load_accepts_the_json_the_weights_the_stem_or_the_directory(tmp_path: Path) -> None:
    spec = _saved(tmp_path)
    for path in (spec, spec.with_suffix(".safetensors"), spec.with_suffix(""), tmp_path, str(tmp_path)):
        loaded = load_learned(path)
        assert isinstance(loaded, ClassConditionalGaussian) and loaded.eps == 1e-4


def test_missing_files_are_named(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nothing.json", f"{tmp_path / 'nothing.json'} does not exist")
    assert_one_line_error(tmp_path, "holds no learned object")
    spec = _saved(tmp_path)
    spec.with_suffix(".safetensors").unlink()
    assert_one_line_error(spec, f"{spec.with_suffix('.safetensors')} does not exist")


def test_broken_and_foreign_files_are_named(tmp_path: Path) -> None:
    spec = _saved(tmp_path)
    good = spec.read_text()
    cases = {
        "{ not json": "is not valid JSON",
        json.dumps({"weights": [1, 2]}): "is not a saved learned object",
        json.dumps([1, 2]): "is not a saved learned object",
    }
    for text, match in cases.items():
        spec.write_text(text)
        assert str(spec) in assert_one_line_error(spec, match)

    def edited(**changes: object) -> None:
        spec.write_text(json.dumps({**json.loads(good), **changes}))

    edited(learned="class_gausian")
    assert "did you mean class_gaussian" in assert_one_line_error(spec, "unknown learned 'class_gausian'")
    edited(params={"epsilon": 1.0})
    assert_one_line_error(spec, "unknown key")
    edited(fitted={"__class__": 1})  # only `_` attributes may be set from a file
    assert_one_line_error(spec, "\"fitted\" entry is missing or malformed")
    edited(tensors=["means_"])
    assert_one_line_error(spec, "do not belong together")
    spec.write_text(good)
    spec.with_suffix(".safetensors").write_bytes(b"\x00garbage")
    assert_one_line_error(spec, "is not a valid safetensors file")


def test_class_load_refuses_another_class(tmp_path: Path) -> None:
    spec = _saved(tmp_path)
    spec.rename(tmp_path / "temperature_scaling.json")
    spec.with_suffix(".safetensors").rename(tmp_path / "temperature_scaling.safetensors")
    with pytest.raises(UserError, match="holds a ClassConditionalGaussian, not a TemperatureScaler"):
        TemperatureScaler.load(tmp_path)


def test_a_directory_with_two_objects_asks_for_one(tmp_path: Path) -> None:
    _saved(tmp_path)
    g = torch.Generator().manual_seed(0)
    TemperatureScaler().fit(*TemperatureScaler.example(g).fit_args).save(tmp_path)
    assert_one_line_error(tmp_path, "holds several learned objects (class_gaussian.json, temperature_scaling.json)")
    assert isinstance(TemperatureScaler.load(tmp_path), TemperatureScaler)


def test_an_unregistered_subclass_cannot_save(tmp_path: Path) -> None:
    class Unregistered(TemperatureScaler):
        """Inherits the parent's registration attribute but is not registered itself."""

    g = torch.Generator().manual_seed(0)
    obj = Unregistered().fit(*TemperatureScaler.example(g).fit_args)
    with pytest.raises(TypeError, match="register_learned"):
        obj.save(tmp_path)


def test_a_non_json_attribute_is_a_bug_not_a_silent_pickle(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    obj = TemperatureScaler().fit(*TemperatureScaler.example(g).fit_args)
    obj.extra_ = {1, 2}
    with pytest.raises(TypeError, match=r"TemperatureScaler\.extra_ is a set"):
        obj.save(tmp_path)


def test_check_tensor_names_expected_and_received() -> None:
    expected = r"^M\.fit expected x as a floating-point tensor of shape \(N, D\), got a list; convert"
    with pytest.raises(UserError, match=expected):
        check_tensor([1.0], where="M.fit", name="x", shape="(N, D)", ndim=2, dtype="float")
    expected = r"expected y as an integer tensor of shape \(N,\), got shape \(3,\) dtype torch\.bool"
    with pytest.raises(UserError, match=expected):
        check_tensor(torch.ones(3, dtype=torch.bool), where="M.fit", name="y", shape="(N,)", ndim=1, dtype="int")
    with pytest.raises(UserError, match="with at least one element"):
        check_tensor(torch.ones(0, 2), where="M.fit", name="x", shape="(N, D)", ndim=2, dtype="float")
    x = torch.ones(2, 2)
    assert check_tensor(x, where="M.fit", name="x", shape="(N, D)", ndim=2, dtype="float") is x


def test_learned_modules_do_not_import_scipy_or_sklearn() -> None:
    code = (
        "import sys, deepstrata.learned.temperature, deepstrata.learned.class_gaussian; "
        "print('scipy' in sys.modules or 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_base_class_is_abstract_enough() -> None:
    with pytest.raises(NotImplementedError):
        Learned().fit()
