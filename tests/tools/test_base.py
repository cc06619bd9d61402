"""The tool contract: argument checks, where analyses and transformations write, lineage, environment."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata import api
from deepstrata.errors import ConfigError
from deepstrata.registry import REGISTRIES, catalog
from deepstrata.run.run import Run
from deepstrata.tools.base import KINDS, Analysis, Derived, apply_tool, phase, phases_to, tool_kind, tool_parameters

pytestmark = pytest.mark.xdist_group("tools")

RECIPE = {
    "name": "tool_tiny",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 64},
    "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [16]},
    "optimizer": {"name": "adamw", "lr": 0.01},
    # Two threads in the recipe: the tools must run with them, and restore the caller's one.
    "trainer": {"max_epochs": 1, "max_steps": 3, "progress": "off", "num_threads": 2},
    "metrics": ["accuracy"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tool_runs")
    return api.train({**RECIPE, "output_dir": str(out / "runs")}).run_dir


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Run:
    """A private copy of the trained run (tests may add files to it)."""
    target = tmp_path / "runs" / "tool_tiny" / trained.name
    shutil.copytree(trained, target)
    return Run.open(target)


@pytest.fixture
def register() -> Iterator[Callable[..., Any]]:
    """Register a test-only tool; removed again after the test (the catalogue sees only src/)."""
    tools = REGISTRIES["tool"]
    added: list[str] = []

    def add(name: str, fn: Any, **meta: Any) -> Any:
        tools.register(name, **meta)(fn)
        added.append(name)
        return fn

    yield add
    for name in added:
        tools._items.pop(name, None)
        tools._meta.pop(name, None)


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file() and "tools" not in p.relative_to(path).parts}


# ---------------------------------------------------------------- the contract of every tool


def test_every_registered_tool_keeps_the_contract() -> None:
    names = REGISTRIES["tool"].names()
    assert "profile" in names
    for name in names:
        assert tool_kind(name) in KINDS
        tool_parameters(name)  # raises TypeError when an argument is not keyword-only, typed, defaulted
        assert catalog()["tool"][name].summary, f"tool '{name}' needs a one-line docstring (strata list tools shows it)"


def test_a_tool_breaking_the_contract_is_refused(register: Callable[..., Any], run_copy: Run) -> None:
    def positional(run: Run, size: int = 1) -> Analysis:  # `size` is not keyword-only
        return Analysis(metrics={})

    register("t_positional", positional, kind="analysis")
    with pytest.raises(TypeError, match="keyword-only"):
        apply_tool("t_positional", run_copy)

    def no_kind(run: Run) -> Analysis:
        return Analysis(metrics={})

    register("t_no_kind", no_kind)
    with pytest.raises(TypeError, match="kind='analysis'"):
        apply_tool("t_no_kind", run_copy)


def test_misspelt_and_mistyped_arguments_are_config_errors(trained: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile\.batch_size: unknown key; did you mean batch_sizes\?"):
        api.apply("profile", trained, batch_size=[1])
    with pytest.raises(ConfigError, match=r"profile\.repeats: .*'many'"):
        api.apply("profile", trained, repeats="many")


def test_unknown_tool_names_the_closest(trained: Path) -> None:
    with pytest.raises(Exception, match="did you mean profile"):
        api.apply("profle", trained)


# ---------------------------------------------------------------- analyses


def test_an_analysis_writes_its_result_and_changes_nothing_else(register: Callable[..., Any], run_copy: Run) -> None:
    seen: dict[str, Any] = {}

    def count_rows(run: Run, *, split: str = "test", scale: float = 1.0) -> Analysis:
        """Count a split's rows (test-only tool)."""
        seen["threads"] = torch.get_num_threads()
        phase("counting")
        rows = len(run.split(split))
        png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
        return Analysis(metrics={f"{split}/rows": rows * scale}, tables={"rows": [{"split": split, "rows": rows}]}, figures={"dummy": png}, summary="counted")

    register("t_count_rows", count_rows, kind="analysis")
    before = _snapshot(run_copy.path)
    threads = torch.get_num_threads()
    messages: list[str] = []
    with phases_to(messages.append):
        result = run_copy.apply("t_count_rows", scale=2)
    assert seen["threads"] == 2 and torch.get_num_threads() == threads  # the recipe's threads, then restored
    assert "counting" in messages
    assert _snapshot(run_copy.path) == before  # nothing outside tools/ changed
    n_test = len(run_copy.split("test"))
    assert result.metrics == {"test/rows": 2.0 * n_test}
    assert json.loads(result.to_json()) == {"run_dir": str(run_copy.path), "metrics": {"test/rows": 2.0 * n_test}}
    folder = result.result_dir
    assert folder.parent == run_copy.path / "tools" / "t_count_rows"
    saved = json.loads((folder / "result.json").read_text())
    assert set(saved) == {"tool", "kind", "args", "metrics", "tables", "summary", "created", "deepstrata_version", "figures", "learned", "files"}
    assert saved["args"] == {"split": "test", "scale": 2.0} and saved["kind"] == "analysis" and saved["figures"] == ["dummy.png"]
    assert (folder / "dummy.png").read_bytes().startswith(b"\x89PNG")
    again = run_copy.apply("t_count_rows")
    results = Run.open(run_copy.path).tool_results("t_count_rows")
    assert [r["dir"] for r in results] == [str(folder), str(again.result_dir)]  # same second: -1 sorts after
    assert Run.open(run_copy.path).latest_tool_result("t_count_rows")["args"]["scale"] == 1.0


def test_a_class_tool_and_a_wrong_outcome(register: Callable[..., Any], run_copy: Run) -> None:
    class Half:
        """Half the parameter count (test-only tool, a class with __call__)."""

        def __call__(self, run: Run, *, factor: float = 0.5) -> Analysis:
            return Analysis(metrics={"half": factor * sum(p.numel() for p in run.model().parameters())})

    register("t_half", Half, kind="analysis")
    total = sum(p.numel() for p in run_copy.model().parameters())
    assert run_copy.apply("t_half").metrics == {"half": 0.5 * total}
    with pytest.raises(ConfigError, match="did you mean factor"):
        run_copy.apply("t_half", fator=1)

    register("t_wrong", lambda run: {"not": "an Analysis"}, kind="analysis")
    with pytest.raises(TypeError, match="must return an Analysis"):
        run_copy.apply("t_wrong")


# ---------------------------------------------------------------- transformations


def test_a_transformation_writes_a_derived_run_that_works_like_any_other(register: Callable[..., Any], run_copy: Run) -> None:
    def copy_model(run: Run, *, note: str = "copied") -> Derived:
        """Copy the model unchanged (test-only transformation)."""
        return Derived(model=copy.deepcopy(run.model()), spec_updates={"note": note}, metrics={"changed_params": 0.0})

    register("t_copy_model", copy_model, kind="transformation")
    (run_copy.path / "tokenizer.json").write_text('{"kind": "test"}')  # a file the model needs: inherited
    before = _snapshot(run_copy.path)
    result = run_copy.apply("t_copy_model", note="same weights")
    assert _snapshot(run_copy.path) == before  # the parent is untouched
    derived = Run.open(result.run_dir)
    assert derived.path.parent == run_copy.path.parent.parent / "tool_tiny-t_copy_model"
    assert result.result_dir is None and result.metrics == {"changed_params": 0.0}

    assert (derived.path / "config.yaml").read_bytes() == (run_copy.path / "config.yaml").read_bytes()
    assert (derived.path / "tokenizer.json").read_text() == '{"kind": "test"}'
    assert not (derived.path / "metrics.jsonl").exists() and not (derived.path / "test_predictions.npz").exists()
    assert derived.spec["note"] == "same weights" and derived.spec["architecture"] == "mlp"
    assert derived.info["status"] == "finished" and derived.info["split"] == run_copy.info["split"]
    assert derived.derived_from["tool"] == "t_copy_model" and derived.derived_from["args"] == {"note": "same weights"}
    assert derived.parent.path.resolve() == run_copy.path.resolve()
    assert [step["tool"] for step in derived.lineage] == [None, "t_copy_model"]
    assert derived.evaluate("test") == run_copy.evaluate("test")  # same weights, same split: same metrics
    assert "Derived from" in (derived.path / "report.html").read_text()

    # Every later tool works on it unchanged, and the lineage grows.
    profiled = derived.apply("profile", batch_sizes=[1], repeats=1, warmup=0)
    assert profiled.metrics["params"] == sum(p.numel() for p in run_copy.model().parameters())
    second = Run.open(derived.apply("t_copy_model").run_dir)
    assert second.path.parent.name == "tool_tiny-t_copy_model-t_copy_model"
    assert [step["tool"] for step in second.lineage] == [None, "t_copy_model", "t_copy_model"]


def test_a_transformation_must_return_derived(register: Callable[..., Any], run_copy: Run) -> None:
    register("t_bad_transform", lambda run: Analysis(metrics={}), kind="transformation")
    with pytest.raises(TypeError, match="must return a Derived"):
        run_copy.apply("t_bad_transform")
