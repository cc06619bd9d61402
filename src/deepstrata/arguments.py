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
INFERRED = frozenset({"num_classes", "in_channels", "input_shape", "in_features", "out_features", "image_size", "vocab_size"})


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
    return {k: getattr(validated, k) for k in kwargs}


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
