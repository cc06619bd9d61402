"""The package is layered: a module may import its own layer and the layers below it, never one above.

Problem: an upward import (a building block in nn/ reaching into models/, a dataset into
transfer/) ties a low layer to everything above it, so nothing can be understood, tested or
reused on its own, and import cycles follow.
Idea: read every module under src/deepstrata with `ast` (nothing is imported, lazy imports
inside functions count too) and fail on each import of a higher layer, naming both modules.
Violations that other work is still removing are listed, each with its reason, in KNOWN.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Lowest first. A module may import any area of its own layer or of a lower one. An area is the
# first name under `deepstrata.` (a subpackage or a top-level module).
LAYERS: list[set[str]] = [
    {"errors", "cache"},  # cache: JSON results keyed by content, used from the registry up
    {"arguments"},  # component-argument checks from signatures, shared by registry and config
    {"registry", "catalog"},
    {"config"},
    {"data", "transforms"},
    {"nn", "losses", "metrics", "estimators", "scratch", "attacks", "fairness"},  # building blocks that know no model; fairness: group metrics of predictions
    {"models", "optim"},
    {"tasks"},
    {"training", "transfer", "experiment", "predictor", "privacy", "federated"},  # transfer learning is training with a pretrained start; privacy: DP-SGD is a strategy; federated: FedAvg is one
    {"run"},
    {"report", "baselines", "labs", "learned", "export", "explain"},  # report may import run and training; export writes a run's model as ONNX or .pt2; explain: attribution methods on any model
    {"api"},  # train / evaluate / load / finetune, built on run, training, transfer and report
    {"tools", "serving", "compression"},  # analyse or transform a finished run, through the API; serve runs; compress them (distillation opens a teacher run)
    {"cli"},
]

# (importing module, imported module) pairs that break the layering today; the work on issue #13
# removes them. Delete an entry once its import is gone: test_known_violations_still_exist says when.
KNOWN: set[tuple[str, str]] = {
    # optim -> training: the plateau scheduler is a training callback
    ("deepstrata.optim.plateau", "deepstrata.training.callbacks.base"),
    # training -> run: atomic writes and checksums live in run/ but are needed below it
    ("deepstrata.training.callbacks.checkpoint", "deepstrata.run.integrity"),
    ("deepstrata.training.callbacks.lm_samples", "deepstrata.run.atomic"),
    ("deepstrata.training.checkpoint", "deepstrata.run.integrity"),
    ("deepstrata.training.test_weights", "deepstrata.run.integrity"),
    # transfer (training level) -> run and api: finetune reads a run's model spec and trains through the API
    ("deepstrata.transfer.finetune", "deepstrata.run.run"),
    ("deepstrata.transfer.pretrained", "deepstrata.run.integrity"),
    ("deepstrata.transfer.finetune", "deepstrata.api"),
    # run -> tools: a run applies tools to itself
    ("deepstrata.run.run", "deepstrata.tools.base"),
}

SRC = Path(__file__).resolve().parents[1] / "src"
RANK = {area: i for i, layer in enumerate(LAYERS) for area in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every deepstrata module that `source`, a module of `package`, imports at top level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if is_module(f"{base}.{a.name}"))  # `from deepstrata import api`
    return {m for m in found if m.startswith("deepstrata.")}


def is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def area(module: str) -> str:
    return module.split(".")[1]


def upward_imports() -> set[tuple[str, str]]:
    """(importer, imported) for each import of a higher layer; the package root `deepstrata` is exempt (it only re-exports lazily)."""
    bad = set()
    for path in sorted((SRC / "deepstrata").rglob("*.py")):
        importer = module_name(path)
        if importer == "deepstrata":
            continue
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for imported in imported_modules(path.read_text(encoding="utf-8"), package):
            if RANK[area(imported)] > RANK[area(importer)]:
                bad.add((importer, imported))
    return bad


def test_every_area_has_a_layer() -> None:
    areas = {area(module_name(p)) for p in (SRC / "deepstrata").rglob("*.py") if module_name(p) != "deepstrata"}
    missing = sorted(areas - RANK.keys())
    assert not missing, f"place {missing} in LAYERS at the top of tests/test_layers.py"


def test_no_module_imports_a_higher_layer() -> None:
    new = sorted(upward_imports() - KNOWN)
    assert not new, "upward imports (lower layer -> higher layer):\n" + "\n".join(
        f"  {a} (layer {RANK[area(a)]}) imports {b} (layer {RANK[area(b)]})" for a, b in new
    )


def test_known_violations_still_exist() -> None:
    gone = sorted(KNOWN - upward_imports())
    assert not gone, f"these imports are gone; delete them from KNOWN in tests/test_layers.py: {gone}"


def test_the_checker_sees_lazy_relative_and_package_imports() -> None:
    source = "import torch\nfrom . import pooling\nfrom ..models.base import Backbone\ndef f():\n    from deepstrata import api, __version__\n"
    assert imported_modules(source, "deepstrata.nn") == {"deepstrata.nn", "deepstrata.nn.pooling", "deepstrata.models.base", "deepstrata.api"}
