"""Recipes: a whole experiment in one YAML file, validated before anything runs.

Problem: a typo in an experiment config (`max_epoch: 30`) is silently ignored by a loose
dict-based config, and the run wastes an hour doing the wrong thing.
Idea: the recipe is a pydantic model with no unknown keys allowed; component arguments are
checked against the registered factory's typed signature; every error names the key's path
in the file and the closest valid key. `--set a.b=c` edits the raw tree before validation, so
overrides get exactly the same checks.
"""

from __future__ import annotations

import copy
import inspect
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepstrata.arguments import validate_component_kwargs
from deepstrata.errors import ConfigError, did_you_mean
from deepstrata.registry import PLURALS, registry

# The strategy name that is a rule rather than a component (training/strategy.py's
# `resolve_strategy`: ddp under torchrun with more than one rank, else single).
AUTO_STRATEGY = "auto"


SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
SAFE_NAME_RULE = "letters, digits, '.', '_' and '-', not starting with '.' and without '..'"


def is_safe_name(name: str) -> bool:
    """True when `name` is one path component that cannot leave its parent folder (a recipe's run folder)."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None and ".." not in name


class ComponentSpec(BaseModel):
    """A registered component by name plus its keyword arguments: `{name: adamw, lr: 0.001}`."""

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataSpec(ComponentSpec):
    """Which dataset, how it is split and batched. Other keys go to the dataset's factory."""

    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    num_workers: int = Field(0, ge=0)
    # How batches are made (data/tensor_loader.py): "tensors" cuts them from the split's tensors in
    # memory; "dataloader" is torch's DataLoader (per-sample indexing, worker processes); "auto"
    # takes tensors for a tensor-backed split with num_workers 0, else the DataLoader.
    loader: Literal["auto", "tensors", "dataloader"] = "auto"
    augment: list[ComponentSpec] = Field(default_factory=list)

    @field_validator("augment", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        return _names_to_specs(value)


class TrainerSpec(BaseModel):
    """How long to train and where."""

    model_config = ConfigDict(extra="forbid")

    max_epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    device: str = "auto"
    # "auto" (training/threads.py): the free cores, fewer for a model too small to use them;
    # an int: exactly that many; null: torch's own default (one per core).
    num_threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = "auto"
    log_every_n_steps: int = Field(1, ge=1)
    monitor: str = "val/loss"
    monitor_mode: Literal["min", "max"] = "min"
    progress: Literal["auto", "bar", "lines", "off"] = "auto"
    deterministic: bool = True
    # Training-engine options (docs/training.md); each maps to a callback or a loop component.
    precision: str = "fp32"  # a registered precision (`strata list precisions`)
    accumulate_grad_batches: int = Field(1, ge=1)
    gradient_clip_norm: float | None = Field(None, gt=0)
    gradient_clip_value: float | None = Field(None, gt=0)
    # "off" drops the guard, which reads every gradient each step (docs/training.md "Overhead").
    nonfinite: Literal["stop", "skip", "off"] = "stop"
    checkpoint_every_n_steps: int | None = Field(None, ge=1)
    save_top_k: int = Field(1, ge=0)
    # A registered strategy (`strata list strategies`), or "auto": ddp under a torchrun launch
    # with more than one rank, else single (training/strategy.py applies the rule). A strategy
    # with settings is a mapping: `{name: dp_sgd, target_epsilon: 3, delta: 1e-5}`.
    strategy: str | ComponentSpec = AUTO_STRATEGY
    # Which weights the test split scores and the run saves: "best" (checkpoints/best.safetensors,
    # the epoch with the best trainer.monitor) or "last". Left out, the Recipe decides: "best"
    # when the recipe names a validation monitor and has a validation split, else "last".
    test_weights: Literal["best", "last"] | None = None

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off`/`on` as a boolean; accept what the user meant.
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value


class ParamGroupSpec(BaseModel):
    """Settings for the parameters whose name matches `match` (fnmatch), e.g. `{match: "head.*", lr_scale: 10}`."""

    model_config = ConfigDict(extra="forbid")

    match: str
    lr: float | None = Field(None, gt=0)
    lr_scale: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    frozen: bool = False


class OptimizerSpec(ComponentSpec):
    """An optimizer by name; other keys go to its factory. Biases and norm weights get no decay by default."""

    decay_norm_and_bias: bool = False
    param_groups: list[ParamGroupSpec] = Field(default_factory=list)


class Recipe(BaseModel):
    """A whole experiment: data, model, loss, optimizer, schedule, trainer, metrics, seed."""

    model_config = ConfigDict(extra="forbid")

    name: str  # the run folder's name (runs/<name>/<time>/): one safe path component

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not is_safe_name(value):
            raise ValueError(f"it names the run folder (runs/<name>/), so use only {SAFE_NAME_RULE}")
        return value

    description: str = ""
    seed: int = 0
    # `task: masked_lm` is short for `{name: masked_lm}`; other keys go to the task's factory
    # (`{name: masked_lm, mask_rate: 0.4}`). None: the dataset's own task.
    task: ComponentSpec | None = None
    data: DataSpec
    model: ComponentSpec
    loss: ComponentSpec | None = None
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(name="adamw"))
    scheduler: ComponentSpec | None = None
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    metrics: list[ComponentSpec] = Field(default_factory=list)
    callbacks: list[ComponentSpec] = Field(default_factory=list)
    output_dir: str = "runs"

    @field_validator("metrics", "callbacks", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        return _names_to_specs(value)

    @field_validator("task", mode="before")
    @classmethod
    def _task_name_to_spec(cls, value: Any) -> Any:
        return task_mapping(value)

    @model_validator(mode="after")
    def _default_test_weights(self) -> Recipe:
        t = self.trainer
        if t.test_weights is None:  # resolved once: config.yaml then records the concrete choice
            # The user said what "best" means (a monitor) and there are validated epochs to choose from.
            named = "monitor" in t.model_fields_set and t.monitor.startswith("val/")
            t.test_weights = "best" if named and self.data.val_fraction > 0 else "last"
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=False), sort_keys=False)


# Task names that became a registered task with arguments. A run directory written before
# records the old name in its config.yaml (`task: masked_lm_whole_word`); reading it gives the
# same task, so old runs keep opening, evaluating and fine-tuning.
RETIRED_TASKS: dict[str, dict[str, Any]] = {
    "masked_lm_whole_word": {"name": "masked_lm", "mask_rate": 0.4, "whole_word": True},
}


def task_mapping(value: Any) -> Any:
    """`task:` as written in a recipe, a config.yaml or a model.json -> `{name, **kwargs}`.

    A plain name becomes `{name: ...}` and a retired name its replacement; a mapping (or None)
    is returned as it is. Whatever reads a run's raw `task` uses this, not only `load_recipe`.
    """
    if isinstance(value, str):
        return dict(RETIRED_TASKS.get(value, {"name": value}))
    return value


def _names_to_specs(value: Any) -> Any:
    """Allow `metrics: [accuracy, f1]` as shorthand for `[{name: accuracy}, {name: f1}]`."""
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


# --------------------------------------------------------------------------------------
# Loading, overriding and validating.
# --------------------------------------------------------------------------------------


def load_recipe(source: str | Path | Mapping[str, Any] | Recipe, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file (or a dict), apply `a.b=c` overrides, validate; raise ConfigError."""
    if isinstance(source, Recipe):
        raw: dict[str, Any] = source.model_dump(mode="json")
        origin = f"recipe '{source.name}'"
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))  # overrides must not edit the caller's dict
        origin = "recipe"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"recipe file '{path}' does not exist; `ls recipes/` shows the recipes that ship")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of keys (data, model, ...), got {type(raw).__name__}")
        raw.setdefault("name", path.stem)
        origin = str(path)
    for item in overrides:
        apply_override(raw, item)
    return validate_recipe(raw, origin=origin)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (`3`, `true`, `[1, 2]`).

    `~a.b.c` removes the key (e.g. an argument the new model does not take after
    `model.name=...` switched the architecture).
    """
    if item.startswith("~"):
        _remove(raw, item[1:])
        return
    if "=" not in item:
        raise ConfigError(f"--set '{item}': expected KEY=VALUE, e.g. --set trainer.max_epochs=5")
    key, _, text = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set '{item}': the key is empty; expected e.g. trainer.max_epochs=5")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"--set {key}: '{where}' holds a value ({child!r}), not a section")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    else:
        node[last] = value


def _remove(raw: dict[str, Any], key: str) -> None:
    parts = [p for p in key.strip().split(".") if p]
    node: Any = raw
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if isinstance(node, list):
            idx = _list_index(node, part, where)
            if last:
                node.pop(idx)
                return
            node = node[idx]
        elif isinstance(node, dict) and part in node:
            if last:
                del node[part]
                return
            node = node[part]
        else:
            raise ConfigError(f"--set ~{key}: there is no '{where}' to remove")


def _list_index(node: list[Any], part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {where}: expected a list index below {len(node)}, got '{part}'")
    return int(part)


def validate_recipe(raw: Mapping[str, Any], *, origin: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(err, Recipe, origin)) from None
    _check_components(recipe)
    return recipe


def _explain(err: ValidationError, model: type[BaseModel], origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        path = ".".join(loc)
        if e["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            lines.append(f"{path}: unknown key{did_you_mean(loc[-1], valid)} (valid keys: {', '.join(valid)})")
        elif e["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            lines.append(f"{path}: {e['msg']} (got {e.get('input')!r})")
    return f"{origin}: " + "; ".join(lines)


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The valid keys of the (sub)model reached by `loc`, for suggestions."""
    current: Any = model
    for part in loc:
        if part.isdigit():
            continue
        field = current.model_fields.get(part) if inspect.isclass(current) else None
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(current.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------------------
# Component arguments, checked against the registered factory's signature (arguments.py).
# --------------------------------------------------------------------------------------

# What the framework hands every task factory: never keys of `task:` in a recipe.
TASK_INJECTED = frozenset({"model", "loss", "metrics", "data"})


def _check_components(recipe: Recipe) -> None:
    strategy = recipe.trainer.strategy
    if isinstance(strategy, str):
        _check_choice("trainer.strategy", "strategy", strategy, also=(AUTO_STRATEGY,))
    else:
        _check_choice("trainer.strategy.name", "strategy", strategy.name)
        factory = registry("strategy").get(strategy.name)
        validate_component_kwargs(factory, strategy.kwargs, path="trainer.strategy", injected=frozenset({"device"}))
    _check_choice("trainer.precision", "precision", recipe.trainer.precision)
    checks: list[tuple[str, str, ComponentSpec, frozenset[str]]] = [
        ("dataset", "data", recipe.data, frozenset(DataSpec.model_fields)),
        ("model", "model", recipe.model, frozenset()),
        ("optimizer", "optimizer", recipe.optimizer, frozenset(OptimizerSpec.model_fields)),
    ]
    if recipe.loss is not None:
        checks.append(("loss", "loss", recipe.loss, frozenset()))
    if recipe.scheduler is not None:
        checks.append(("scheduler", "scheduler", recipe.scheduler, frozenset()))
    if recipe.task is not None:
        checks.append(("task", "task", recipe.task, frozenset()))
    checks += [("metric", f"metrics.{i}", m, frozenset()) for i, m in enumerate(recipe.metrics)]
    checks += [("callback", f"callbacks.{i}", c, frozenset()) for i, c in enumerate(recipe.callbacks)]
    checks += [("transform", f"data.augment.{i}", t, frozenset()) for i, t in enumerate(recipe.data.augment)]
    for kind, path, spec, own_fields in checks:
        try:
            factory = registry(kind).get(spec.name)
        except ConfigError:
            raise
        except Exception as err:  # UserError from the registry: prefix the path
            raise ConfigError(f"{path}.name: {err}") from None
        injected = TASK_INJECTED if kind == "task" else frozenset()
        validate_component_kwargs(factory, spec.kwargs, path=path, extra_valid=own_fields, injected=injected)


def _check_choice(path: str, kind: str, name: str, *, also: tuple[str, ...] = ()) -> None:
    """A field naming a registered component (no arguments): known name, or the closest one."""
    choices = [*also, *registry(kind).names()]  # from the source scan: nothing is imported
    if name not in choices:
        raise ConfigError(
            f"{path}: unknown {kind} '{name}'{did_you_mean(name, choices)} "
            f"(choices: {', '.join(choices)}; `strata list {PLURALS[kind]}` describes them)"
        )
