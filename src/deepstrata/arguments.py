"""Component arguments, checked against the registered factory's typed signature.

Problem: a recipe's `{name: adamw, lr: 0.001}` reaches a factory as plain data, so a misspelt or
mistyped key surfaces as a TypeError deep inside the build, or not at all.
Idea: derive a pydantic model from the factory's keyword parameters (once per factory) and
validate the user's keys against it, naming the key's path, the closest valid key and the valid
keys. Arguments the framework supplies are never user keys; those filled from the data may be
left out. This module sits below both the registry (`registry.create`) and the recipe
(`config.py`), so neither has to import the other to check arguments.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from deepstrata.errors import ConfigError, did_you_mean

# Arguments the framework supplies itself (never written in a recipe).
INJECTED = frozenset({"params", "optimizer", "model", "num_training_steps", "run_dir"})
# Arguments the framework fills from the data when the recipe leaves them out.
INFERRED = frozenset({"num_classes", "in_channels", "input_shape", "in_features", "out_features", "image_size", "vocab_size", "numeric_features", "categorical_cardinalities"})


# The range every component's parameter of this name must lie in, whatever the component: a
# learning rate of -1 or a dropout of 2 is caught when the recipe is read, not by torch mid-run.
# (low, high, low inclusive, high inclusive); None is unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr": (0.0, None, False, False),
    "weight_decay": (0.0, None, True, False),
    "momentum": (0.0, 1.0, True, True),
    "dropout": (0.0, 1.0, True, False),
    "drop_path": (0.0, 1.0, True, False),
    "label_smoothing": (0.0, 1.0, True, False),
    "eps": (0.0, None, False, False),
    "decay": (0.0, 1.0, True, False),
    "warmup_steps": (0.0, None, True, False),
    "mask_rate": (0.0, 1.0, False, False),
}


def check_ranges(values: Mapping[str, Any], *, path: str) -> None:
    """ConfigError naming the first parameter outside its range in `RANGES`."""
    for key, value in values.items():
        bounds = RANGES.get(key)
        if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high, low_in, high_in = bounds
        ok = (low is None or (value >= low if low_in else value > low)) and (high is None or (value <= high if high_in else value < high))
        if not ok:
            left = "" if low is None else f"{low:g} {'<=' if low_in else '<'} "
            right = "" if high is None else f" {'<=' if high_in else '<'} {high:g}"
            raise ConfigError(f"{path}.{key}: must be {left}{key}{right}, got {value!r}")


def validate_component_kwargs(
    factory: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    path: str,
    extra_valid: frozenset[str] = frozenset(),
    injected: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Type-check `kwargs` against the factory's keyword parameters; return coerced values.

    `injected` names further parameters that this kind of component receives from the
    framework (a task's `loss`, `metrics`, `data`): they are not user keys.
    """
    model = _signature_model(factory, INJECTED | injected)
    try:
        validated = model.model_validate(dict(kwargs))
    except ValidationError as err:
        lines = []
        valid = sorted(set(model.model_fields) | extra_valid - {"name"})
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                choices = f"valid keys: {', '.join(valid)}" if valid else f"'{path}' takes no arguments; remove the key"
                lines.append(f"{path}.{key}: unknown key{did_you_mean(key, valid)} ({choices})")
            else:
                lines.append(f"{path}.{key}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError("; ".join(lines)) from None
    values = {k: getattr(validated, k) for k in kwargs}
    check_ranges(values, path=path)
    return values


@cache
def _signature_model(factory: Callable[..., Any], injected: frozenset[str]) -> type[BaseModel]:
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    fields: dict[str, Any] = {}
    accepts_anything = False
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind is param.VAR_KEYWORD:
            accepts_anything = True
            continue
        if param.kind is param.VAR_POSITIONAL or name in injected or name == "self":
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is param.empty else param.default
        fields[name] = (annotation, default if name not in INFERRED else param.default if param.default is not param.empty else None)
    config = ConfigDict(extra="allow" if accepts_anything else "forbid", arbitrary_types_allowed=True)
    return create_model(f"Args_{getattr(factory, '__name__', 'component')}", __config__=config, **fields)
