"""One name-to-factory registry per kind of component.

Problem: a toolkit grows by adding models, datasets, optimizers... If the core has to be
edited for each one (an `if name == "adam"` chain, an import list), it rots.
Idea: components register themselves with a decorator, `@register_model("resnet18")`. A cheap
scan of the package's source finds every registration and its docstring without importing
anything, so `strata list` stays fast and `get("resnet18")` imports only the module that
defines it. Duplicate names are an error. (After timm's `@register_model`, stricter.)
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from deepstrata.errors import UserError, did_you_mean

# kind -> its plural, as `strata list <plural>` and error messages spell it.
PLURALS = {
    "model": "models",
    "dataset": "datasets",
    "transform": "transforms",
    "loss": "losses",
    "optimizer": "optimizers",
    "scheduler": "schedulers",
    "callback": "callbacks",
    "metric": "metrics",
    "task": "tasks",
    "report_section": "report_sections",
    "strategy": "strategies",  # where the steps run: one process, DDP, FSDP (training/strategy.py)
    "precision": "precisions",  # number formats of the loop: fp32, bf16, fp16 (training/precision.py)
    "finetune_strategy": "finetune_strategies",  # how a pretrained body is trained (transfer/strategies.py)
    "key_map": "key_maps",  # renamings of foreign checkpoints' keys (transfer/weights.py)
    "tool": "tools",  # what acts on a finished run: analyses and transformations (tools/)
    "learned": "learned",  # objects fitted on data under scikit-learn's contract (learned/)
    "attack": "attacks",  # adversarial attacks on any classifier model(x) -> logits (attacks/)
    "client_split": "client_splits",  # how federated training divides data among clients (federated/splits.py)
    "serving_backend": "serving_backends",  # what runs a served model's forward pass: torch, onnxruntime (serving/backends.py)
    "explainer": "explainers",  # attribution methods: which parts of an input a prediction rests on (explain/)
    "rule_action": "rule_actions",  # what a declared business rule does to a prediction: veto, override (tools/rules.py)
}
KINDS = tuple(PLURALS)
PACKAGE_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CatalogEntry:
    """Where a registered component lives, found without importing it."""

    kind: str
    name: str
    module: str
    qualname: str
    summary: str


class Registry:
    """Name -> factory for one kind of component."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a factory as `name`.

        `meta` is plain data about the component that tools and tests read, e.g. a model's
        `example={"input_shape": [1, 8, 8], "kwargs": {"num_classes": 10}}` used by the
        registry-wide contract tests.
        """

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._meta[name] = meta
            existing = self._items.get(name)
            if existing is not None and existing is not factory:
                if _same_definition(existing, factory):
                    self._items[name] = factory  # the same module imported again (e.g. reload)
                    return factory
                raise ValueError(
                    f"{self.kind} '{name}' is registered twice: by {_where(existing)} and by "
                    f"{_where(factory)}; rename one of them"
                )
            self._items[name] = factory
            factory.registered_name = name  # type: ignore[attr-defined]
            return factory

        return decorator

    def names(self) -> list[str]:
        """Every registered name, including those not imported yet."""
        return sorted(set(catalog().get(self.kind, {})) | set(self._items))

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as `name`; imports its module on first use."""
        if name not in self._items:
            entry = catalog().get(self.kind, {}).get(name)
            if entry is not None:
                importlib.import_module(entry.module)
        if name not in self._items:
            raise UserError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())} "
                f"(choices: {', '.join(self.names())}; `strata list {PLURALS[self.kind]}` describes them)"
            )
        return self._items[name]

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata given at registration (imports the component's module)."""
        self.get(name)
        return dict(self._meta.get(name, {}))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def load_all(self) -> dict[str, Callable[..., Any]]:
        """Import every module that registers this kind; returns the live mapping."""
        for entry in catalog().get(self.kind, {}).values():
            importlib.import_module(entry.module)
        return dict(self._items)


def _where(obj: Callable[..., Any]) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    return _where(a) == _where(b)


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}

MODELS = REGISTRIES["model"]
DATASETS = REGISTRIES["dataset"]
TRANSFORMS = REGISTRIES["transform"]
LOSSES = REGISTRIES["loss"]
OPTIMIZERS = REGISTRIES["optimizer"]
SCHEDULERS = REGISTRIES["scheduler"]
CALLBACKS = REGISTRIES["callback"]
METRICS = REGISTRIES["metric"]
TASKS = REGISTRIES["task"]
REPORT_SECTIONS = REGISTRIES["report_section"]

register_model = MODELS.register
register_dataset = DATASETS.register
register_transform = TRANSFORMS.register
register_loss = LOSSES.register
register_optimizer = OPTIMIZERS.register
register_scheduler = SCHEDULERS.register
register_callback = CALLBACKS.register
register_metric = METRICS.register
register_task = TASKS.register
register_report_section = REPORT_SECTIONS.register
register_strategy = REGISTRIES["strategy"].register
register_precision = REGISTRIES["precision"].register
register_finetune_strategy = REGISTRIES["finetune_strategy"].register
register_key_map = REGISTRIES["key_map"].register
register_tool = REGISTRIES["tool"].register
register_learned = REGISTRIES["learned"].register
register_attack = REGISTRIES["attack"].register
register_client_split = REGISTRIES["client_split"].register
register_serving_backend = REGISTRIES["serving_backend"].register
register_explainer = REGISTRIES["explainer"].register
register_rule_action = REGISTRIES["rule_action"].register


def registry(kind: str) -> Registry:
    """The registry of `kind` ("model" or "models", ...), with a helpful error otherwise."""
    singulars = {plural: k for k, plural in PLURALS.items()}
    singular = singulars.get(kind, kind)
    if singular not in REGISTRIES:
        plurals = sorted(PLURALS.values())
        raise UserError(f"unknown component kind '{kind}'{did_you_mean(kind, plurals)} (choices: {', '.join(plurals)})")
    return REGISTRIES[singular]


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build the component `name` of `kind` with typed, validated keyword arguments."""
    from deepstrata.arguments import validate_component_kwargs  # pydantic: only when building

    factory = registry(kind).get(name)
    clean = validate_component_kwargs(factory, kwargs, path=registry(kind).kind)
    return factory(**clean)


# --------------------------------------------------------------------------------------
# The catalogue: registrations found by reading the source, not by importing it.
# --------------------------------------------------------------------------------------


@cache
def catalog() -> dict[str, dict[str, CatalogEntry]]:
    """{kind: {name: entry}} for every `@register_<kind>("name")` in the package source.

    Parsing the source takes about 0.2 s, so the result is kept in the on-disk cache
    (deepstrata/cache.py) under a hash of every source file's path and bytes: any edit to any
    file makes a new entry.
    """
    from deepstrata.cache import cached_json

    sources = [(path, path.read_bytes()) for path in sorted(PACKAGE_ROOT.rglob("*.py"))]
    parts = [piece for path, raw in sources for piece in (str(path.relative_to(PACKAGE_ROOT)).encode(), raw)]
    rows = cached_json("catalog-v1", parts, lambda: [list(vars(e).values()) for e in _scan_sources(sources)])
    found: dict[str, dict[str, CatalogEntry]] = {k: {} for k in KINDS}
    for row in rows:
        entry = CatalogEntry(*row)
        found[entry.kind][entry.name] = entry
    return found


def _scan_sources(sources: list[tuple[Path, bytes]]) -> list[CatalogEntry]:
    """Every registration in the files, in file order; a name registered twice is an error."""
    seen: dict[tuple[str, str], CatalogEntry] = {}
    for path, raw in sources:
        text = raw.decode("utf-8")
        if "register_" not in text:
            continue
        module = _module_name(path)
        for entry in _scan(text, module):
            previous = seen.get((entry.kind, entry.name))
            if previous is not None:
                raise ValueError(
                    f"{entry.kind} '{entry.name}' is registered twice: in {previous.module} and in "
                    f"{entry.module}; rename one of them"
                )
            seen[entry.kind, entry.name] = entry
    return list(seen.values())


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _scan(text: str, module: str) -> list[CatalogEntry]:
    tree = ast.parse(text)
    entries = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name)):
                continue
            kind = deco.func.id.removeprefix("register_")
            if not deco.func.id.startswith("register_") or kind not in REGISTRIES:
                continue
            if not (deco.args and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
                continue
            doc = ast.get_docstring(node) or ""
            summary = doc.strip().splitlines()[0] if doc.strip() else ""
            entries.append(CatalogEntry(kind, deco.args[0].value, module, node.name, summary))
    return entries

