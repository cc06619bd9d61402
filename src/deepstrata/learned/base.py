"""The contract of objects that learn from data: construct, `fit`, use, save as safetensors + JSON.

Problem: a temperature, a class mean or a drift reference fitted on data is a small model of its
own; when each tool invents its API and pickles the result, nothing can reload it safely and
nobody can tell a fitted object from one that still holds its defaults.
Idea: follow scikit-learn's estimator contract (Buitinck et al. 2013, "API design for machine
learning software"): `__init__` stores typed keyword arguments only, `fit` validates its inputs,
sets attributes ending in `_` and returns `self`, and a method that needs fitting refuses to run
before. Persistence writes the `_` tensors to `<name>.safetensors` and everything else to
`<name>.json`; loading rebuilds the object through the registry, so no file ever runs code.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import torch

from deepstrata.errors import UserError

FORMAT = "deepstrata.learned/1"


class NotFittedError(UserError):
    """A learned object was used before `fit`."""


@dataclass(frozen=True)
class Example:
    """A small fitting problem for the registry-wide tests: `fit(*fit_args)`, then `method(*inputs)`.

    `invalid_fit_args` and `invalid_inputs` list arguments (wrong shapes, dtypes, sizes) that
    `fit` and `method` must refuse with a UserError.
    """

    fit_args: tuple[Any, ...]
    method: str
    inputs: tuple[Any, ...]
    invalid_fit_args: tuple[tuple[Any, ...], ...] = ()
    invalid_inputs: tuple[tuple[Any, ...], ...] = ()


class Learned:
    """Base class of objects fitted on data (calibrators, OOD scorers, drift detectors, observers).

    Subclasses define `__init__(self, *, arg: type = default, ...)` that only stores its
    arguments under the same names, `fit(...)` that returns `self`, call `check_is_fitted()` at
    the top of every method that uses a fitted attribute, and register with
    `@register_learned("name")`. `fit_call` names the fit call in the not-fitted message.
    """

    fit_call: ClassVar[str] = "fit(...)"

    # ---------------------------------------------------------------- the estimator contract

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's keyword-only parameters, read from its signature (as scikit-learn)."""
        if cls.__init__ is object.__init__:
            return []
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: `type(self)(**obj.get_params())` builds an unfitted twin."""
        return {name: getattr(self, name) for name in self.param_names()}

    def fitted_attributes(self) -> dict[str, Any]:
        """Every attribute learned by `fit`: public names ending in `_`."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted_attributes())

    def check_is_fitted(self) -> None:
        """Raise NotFittedError unless `fit` has run."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call {self.fit_call} first")

    def fit(self, *args: Any, **kwargs: Any) -> Self:
        raise NotImplementedError(f"{type(self).__name__} must implement fit(...) returning self")

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        """A small seeded fitting problem that the registry-wide tests in tests/learned/ run."""
        raise NotImplementedError(f"{cls.__name__} must define example(generator) for the common tests")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- persistence

    @classmethod
    def registered_as(cls) -> str:
        """The name this class registered under (its files are `<name>.json` / `<name>.safetensors`)."""
        name = cls.__dict__.get("registered_name")
        if not isinstance(name, str):
            raise TypeError(f"{cls.__name__} is not registered; decorate it with @register_learned(\"name\")")
        return name

    def save(self, directory: str | Path) -> Path:
        """Write `<name>.safetensors` (tensor `_` attributes) and `<name>.json`; returns the JSON path."""
        from safetensors.torch import save_file

        from deepstrata import __version__
        from deepstrata.run.atomic import atomic_write, atomic_write_text

        self.check_is_fitted()
        name = self.registered_as()
        fitted = self.fitted_attributes()
        tensors = {k: v.detach().cpu().contiguous() for k, v in fitted.items() if isinstance(v, torch.Tensor)}
        plain = {k: _plain(v, f"{type(self).__name__}.{k}") for k, v in fitted.items() if k not in tensors}
        spec = {
            "format": FORMAT,
            "learned": name,
            "params": {k: _plain(v, f"{type(self).__name__}({k}=...)") for k, v in self.get_params().items()},
            "fitted": plain,
            "tensors": sorted(tensors),
            "deepstrata_version": __version__,
        }
        directory = Path(directory)
        atomic_write(directory / f"{name}.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        text = json.dumps(spec, indent=2, sort_keys=True, allow_nan=False) + "\n"
        return atomic_write_text(directory / f"{name}.json", text)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Rebuild the object saved in `directory` by `save`; on the base class, whichever one is there."""
        directory = Path(directory)
        if cls is Learned:
            return load_learned(directory)  # type: ignore[return-value]
        path = directory / f"{cls.registered_as()}.json"
        obj = load_learned(path)
        if type(obj) is not cls:
            raise UserError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def load_learned(path: str | Path) -> Learned:
    """Rebuild a learned object from `<name>.json` (+ `<name>.safetensors`), a file stem or its directory."""
    from deepstrata.registry import create

    spec_path = _spec_path(Path(path))
    spec = _read_spec(spec_path)
    try:
        obj = create("learned", spec["learned"], **spec["params"])
    except UserError as err:
        raise UserError(f"{spec_path}: {err}") from None
    for key, value in spec["fitted"].items():
        setattr(obj, key, value)
    for key, tensor in _read_tensors(spec_path.with_suffix(".safetensors"), spec["tensors"]).items():
        setattr(obj, key, tensor)
    return obj


# ------------------------------------------------------------------------------------------
# Input validation shared by every member: the message names the call, the expected and the
# received shape and dtype, so a user never has to decode a broadcasting error from torch.
# ------------------------------------------------------------------------------------------


def check_tensor(
    value: Any,
    *,
    where: str,
    name: str,
    shape: str,
    ndim: int,
    dtype: Literal["float", "int"],
) -> torch.Tensor:
    """Return `value` if it is a non-empty tensor with `ndim` dimensions of the dtype family.

    `shape` spells the expected shape for the message, e.g. "(N, K)". Floating inputs must be
    finite; integer inputs may be any integer dtype but not bool.
    """
    family = "a floating-point" if dtype == "float" else "an integer"
    expected = f"{where} expected {name} as {family} tensor of shape {shape}"
    if not isinstance(value, torch.Tensor):
        raise UserError(f"{expected}, got a {type(value).__name__}; convert it with torch.as_tensor(...)")
    got = f"got shape {tuple(value.shape)} dtype {value.dtype}"
    is_float = value.is_floating_point()
    is_int = not is_float and not value.is_complex() and value.dtype is not torch.bool
    if value.ndim != ndim or (dtype == "float" and not is_float) or (dtype == "int" and not is_int):
        raise UserError(f"{expected}, {got}")
    if value.numel() == 0:
        raise UserError(f"{expected} with at least one element, {got}")
    if is_float and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise UserError(f"{where}: {name} holds {bad} NaN or infinite values; remove them before fitting")
    return value


def check_same_length(where: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """Both tensors describe the same N samples."""
    if a.shape[0] != b.shape[0]:
        raise UserError(
            f"{where} expected {names[0]} and {names[1]} for the same N samples, got "
            f"{names[0]} of shape {tuple(a.shape)} and {names[1]} of shape {tuple(b.shape)}"
        )


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------


def _plain(value: Any, what: str) -> Any:
    """`value` as JSON data (tuples become lists); anything else is a bug in the member."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what} is {value}; JSON cannot hold it, store it as a tensor")
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, what) for k, v in value.items()}
    raise TypeError(f"{what} is a {type(value).__name__}; learned attributes must be tensors or JSON data")


def _spec_path(path: Path) -> Path:
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix(".json")
    if path.is_dir():
        specs = sorted(p for p in path.glob("*.json") if p.with_suffix(".safetensors").is_file())
        if len(specs) == 1:
            return specs[0]
        if not specs:
            raise UserError(f"'{path}' holds no learned object (<name>.json + <name>.safetensors)")
        names = ", ".join(p.name for p in specs)
        raise UserError(f"'{path}' holds several learned objects ({names}); pass one of them")
    return path.with_suffix(".json")  # a stem: runs/x/tools/calibrate/temperature_scaling


def _read_spec(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a file written by Learned.save(directory)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); it is not a saved learned object") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UserError(f"{path} is not a saved learned object (no \"format\": \"{FORMAT}\")")
    fields: dict[str, Callable[[Any], bool]] = {
        "learned": lambda v: isinstance(v, str),
        "params": lambda v: isinstance(v, dict),
        "fitted": lambda v: isinstance(v, dict) and all(_is_fitted_name(k) for k in v),
        "tensors": lambda v: isinstance(v, list) and all(isinstance(k, str) and _is_fitted_name(k) for k in v),
    }
    for key, valid in fields.items():
        if key not in spec or not valid(spec[key]):
            raise UserError(f"{path} is broken: its \"{key}\" entry is missing or malformed; save the object again")
    return spec


def _is_fitted_name(key: str) -> bool:
    return key.isidentifier() and key.endswith("_") and not key.startswith("_")


def _read_tensors(path: Path, expected: list[str]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"{path} does not exist; a learned object needs both its .json and its .safetensors file")
    try:
        tensors = load_file(str(path))
    except SafetensorError as err:
        raise UserError(f"{path} is not a valid safetensors file ({err}); save the object again") from None
    if sorted(tensors) != sorted(expected):
        raise UserError(
            f"{path} holds tensors {sorted(tensors)} but {path.with_suffix('.json').name} lists {sorted(expected)}; "
            "the two files do not belong together"
        )
    return tensors
