"""No behaviour is chosen by comparing a registered model or task name as a string.

Problem: `if architecture.endswith("ddpm")` or `task == "classification"` in a command or a
report section works until someone registers a model the check has never heard of; then the
new model silently takes the wrong branch. Idea: behaviour belongs to the component (a task's
`predict_rows`, a model's `sample_options`, an `isinstance` on its class); this test reads
every module of the package and fails on a string comparison, membership test or
prefix/suffix test against a registered model or task name outside the registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

from deepstrata.registry import PACKAGE_ROOT, catalog

# The registry maps names to factories: the one place where names are compared.
ALLOWED = {"registry.py", "catalog.py"}
# Words that are also registered names but are compared as something else here, each with why.
# A new entry needs the same kind of reason; "the code wanted to know the model" is not one.
SAME_WORD = {
    ("models/realnvp.py", "mlp"): "the coupling argument's value coupling='mlp', not the mlp model",
    ("models/vit.py", "vit"): "the init argument's value init='vit' (the ViT-B initialisation scheme)",
    ("data/tables.py", "classification"): "the csv dataset's own `task` argument (auto/classification/regression)",
    ("data/tables.py", "regression"): "the csv dataset's own `task` argument (auto/classification/regression)",
    ("data/toy_tables.py", "classification"): "the toy-table factory's `task` argument",
    ("data/base.py", "classification"): "the label kind of raw data (class indices: validated, stratified); data sits below tasks",
}


def _names() -> set[str]:
    found = catalog()
    return set(found["model"]) | set(found["task"])


def _strings(node: ast.AST) -> list[str]:
    """The string literals of a constant or of a tuple/list/set of constants."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def name_dispatch(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, registered name) for every comparison of a value against a registered name."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            for side in (node.left, *node.comparators):
                hits += [(node.lineno, s) for s in _strings(side) if s in names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("startswith", "endswith") and node.args:
            for s in _strings(node.args[0]):
                test = str.startswith if node.func.attr == "startswith" else str.endswith
                matched = sorted(n for n in names if s and test(n, s))
                hits += [(node.lineno, f"{node.func.attr}({s!r}) matches {', '.join(matched)}")] if matched else []
    return hits


def test_no_string_dispatch_on_registered_model_or_task_names() -> None:
    names = _names()
    problems = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if path.name in ALLOWED and path.parent == PACKAGE_ROOT:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(PACKAGE_ROOT).as_posix()
        problems += [f"{rel}:{line}: compares against '{name}'" for line, name in name_dispatch(tree, names) if (rel, name) not in SAME_WORD]
    assert not problems, "behaviour chosen by a registered name (ask the component instead):\n" + "\n".join(problems)


def test_the_scan_catches_each_form_it_forbids() -> None:
    names = {"vit", "vit_b16", "ddpm", "conditional_ddpm", "classification", "vae"}
    source = (
        'if task == "classification": pass\n'
        'if name in ("vae", "cvae"): pass\n'
        'if arch.startswith("vit"): pass\n'
        'if arch.endswith("ddpm"): pass\n'
        'if split == "train" and mode != "min": pass\n'
    )
    hits = name_dispatch(ast.parse(source), names)
    assert [line for line, _ in hits] == [1, 2, 3, 4]
