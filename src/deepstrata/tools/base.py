"""The tool contract: what acts on a finished run, and where its outcome goes.

Problem: profiling, pruning, calibrating or quantizing a trained model each need a run's model,
data and environment, and each wants to write its outcome somewhere; written one by one, every
tool reopens the run its own way, invents its own output folder, and some edit the run in place.
Idea: a tool is one registered function `tool(run, *, typed_arg=default, ...)` that returns an
`Analysis` (numbers, tables, figures: written under `RUN/tools/<tool>/<time>/`, the run itself is
never touched) or a `Derived` model (written as a new run beside the parent, whose run.json
names the parent and the tool with its arguments, so every command and tool works on it
unchanged). `apply_tool` checks the arguments against the signature, runs the tool inside the
run's environment and writes the outcome; the CLI makes every tool a `strata <tool>` command.
(MLflow's parent runs and lineage; torchao's configs that return a new object.)
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import io
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepstrata.registry import REGISTRIES
from deepstrata.run.run import RESULT, TOOLS_DIR, Run

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from deepstrata.learned.base import Learned

TOOLS = REGISTRIES["tool"]
KINDS = ("analysis", "transformation")
LEARNED_DIR = "learned"  # an analysis's fitted objects, inside its result folder


@dataclass
class Analysis:
    """What an analysis found: `metrics` (flat numbers), `tables` (name -> rows of plain values),
    `figures` (file stem -> matplotlib Figure or PNG bytes), a one-paragraph `summary`, and the
    `learned` objects it fitted (OOD scorers, calibrators), saved as safetensors + JSON under
    `learned/` so that `saved_learned(run, tool, name)` rebuilds each one without refitting.

    The first table is the main one: the CLI prints it and report sections show it first.
    `files` (name -> a file the tool wrote in a scratch folder, see `scratch_dir`) are moved into
    the result folder under their names, which must stay inside it (an export's model.onnx and
    its external data).
    """

    metrics: dict[str, float]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    learned: list[Learned] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Derived:
    """What a transformation made: a new `model` (never the parent's object changed in place),
    `spec_updates` merged into the parent's model.json (new architecture arguments, a note), and
    `metrics` describing the change (sparsity, bits, temperature), kept in the new run's run.json.
    `sparse_weights`: store model.safetensors as bitmask + non-zero values (pruned models;
    `transfer/sparse_weights.py`); it loads back to the identical dense weights.
    """

    model: nn.Module
    spec_updates: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    sparse_weights: bool = False


@dataclass
class ToolResult:
    """What `apply_tool` returns: `api.RunResult`'s two fields plus what the tool wrote.

    `run_dir`: the analysed run, or the new run a transformation wrote; `result_dir`: the
    analysis's `tools/<tool>/<time>/` folder (None for a transformation). `to_json()` is
    `{"run_dir", "metrics"}`, as `strata train --json` prints it. (Not a subclass of
    `api.RunResult` only because importing the API imports torch, and `strata <tool> --help`
    must not.)
    """

    run_dir: Path
    metrics: dict[str, float]
    tool: str = ""
    kind: str = "analysis"
    result_dir: Path | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: str = ""

    def to_json(self) -> str:
        return json.dumps({"run_dir": str(self.run_dir), "metrics": _plain(self.metrics)})


# --------------------------------------------------------------------------------------
# Progress: tools say which phase they are in; whoever called them decides what to show.
# --------------------------------------------------------------------------------------

_PHASE_LISTENER: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("tool_phase_listener", default=None)


def phase(message: str) -> None:
    """Announce the phase a tool is starting ("timing batch size 32"); silent unless someone listens."""
    listener = _PHASE_LISTENER.get()
    if listener is not None:
        listener(message)


@contextlib.contextmanager
def phases_to(listener: Callable[[str], None]) -> Iterator[None]:
    """Send every `phase(...)` announced inside the block to `listener` (the CLI prints them)."""
    token = _PHASE_LISTENER.set(listener)
    try:
        yield
    finally:
        _PHASE_LISTENER.reset(token)


# --------------------------------------------------------------------------------------
# The contract, checked.
# --------------------------------------------------------------------------------------


def tool_kind(name: str) -> str:
    """The tool's kind as it registered: "analysis" or "transformation"."""
    kind = TOOLS.meta(name).get("kind")
    if kind not in KINDS:
        raise TypeError(f"tool '{name}' must register with kind='analysis' or kind='transformation', got {kind!r}")
    return str(kind)


def tool_function(name: str) -> Callable[..., Any]:
    """The function whose signature states the tool's arguments (a class's `__call__`)."""
    tool = TOOLS.get(name)
    return tool.__call__ if inspect.isclass(tool) else tool


def tool_parameters(name: str) -> list[inspect.Parameter]:
    """The tool's arguments (keyword-only, typed, with defaults); the run parameter excluded.

    Raises TypeError (a programming error) when the tool breaks the contract.
    """
    fn = tool_function(name)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise TypeError(f"tool '{name}' must take the Run as its first positional parameter: def {name}(run: Run, *, ...)")
    rest = params[1:]
    for p in rest:
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty or p.annotation is p.empty:
            raise TypeError(f"tool '{name}': argument '{p.name}' must be keyword-only, typed and have a default (def {name}(run, *, {p.name}: int = 1))")
    return rest


def tool_defaults(name: str) -> dict[str, Any]:
    return {p.name: p.default for p in tool_parameters(name)}


def validate_tool_args(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The tool's arguments with defaults filled in, type-checked against its signature.

    A misspelt or mistyped argument raises the same `ConfigError` as a recipe key:
    `profile.batch_size: unknown key; did you mean batch_sizes? (valid keys: ...)`.
    """
    from deepstrata.arguments import validate_component_kwargs

    fn = tool_function(name)
    run_param = next(p.name for p in inspect.signature(fn).parameters.values() if p.name != "self")
    tool_parameters(name)  # the contract, before the user's values
    clean = validate_component_kwargs(fn, dict(kwargs), path=name, injected=frozenset({run_param}))
    return {**tool_defaults(name), **clean}


# --------------------------------------------------------------------------------------
# Applying a tool.
# --------------------------------------------------------------------------------------


def apply_tool(name: str, run: Run | str | Path, /, **kwargs: Any) -> ToolResult:
    """Run the registered tool `name` on a finished run and write its outcome.

    An analysis lands in `RUN/tools/<name>/<YYYYmmdd-HHMMSS[-k]>/` (result.json + figures); a
    transformation becomes a new run `<runs>/<parent folder>-<name>/<time>/`. The tool runs inside
    the run's environment (the recipe's thread count and determinism).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    kind = tool_kind(name)
    args = validate_tool_args(name, kwargs)
    tool = TOOLS.get(name)
    call = tool() if inspect.isclass(tool) else tool
    phase(f"{name}: opening {run.path}")
    with run.environment():
        outcome = call(run, **args)
    if kind == "analysis":
        if not isinstance(outcome, Analysis):
            raise TypeError(f"analysis tool '{name}' must return an Analysis, got {type(outcome).__name__}")
        phase(f"{name}: writing the result")
        result_dir = write_analysis(run, name, args, outcome)
        return ToolResult(run.path, dict(outcome.metrics), tool=name, kind=kind, result_dir=result_dir, tables=outcome.tables, summary=outcome.summary)
    if not isinstance(outcome, Derived):
        raise TypeError(f"transformation tool '{name}' must return a Derived, got {type(outcome).__name__}")
    phase(f"{name}: writing the derived run")
    new_dir = write_derived(run, name, args, outcome)
    return ToolResult(new_dir, dict(outcome.metrics), tool=name, kind=kind)


def write_analysis(run: Run, name: str, args: Mapping[str, Any], analysis: Analysis) -> Path:
    """Write result.json and the figures into a fresh `RUN/tools/<name>/<time>/`; returns it.

    result.json is written last (atomically), so a folder without it is an interrupted result
    that `Run.tool_results` ignores; nothing else in the run is touched.
    """
    from deepstrata import __version__
    from deepstrata.run.atomic import atomic_write, atomic_write_text

    from deepstrata.run.safe_paths import inside

    for filename in analysis.files:  # refused before anything is written
        inside(run.path / TOOLS_DIR / name / "result", filename, what="tool output file")
    folder = _new_stamped_dir(run.path / TOOLS_DIR / name)
    figure_files = []
    for stem, figure in analysis.figures.items():
        filename = f"{stem}.png"
        png = _png_bytes(figure)
        atomic_write(folder / filename, lambda p, data=png: p.write_bytes(data))
        figure_files.append(filename)
    names = [obj.registered_as() for obj in analysis.learned]
    if len(set(names)) < len(names):
        raise TypeError(f"tool '{name}' returned learned objects {names}: two share a registered name, so one file would overwrite the other; return one of each")
    learned_files = [obj.save(folder / LEARNED_DIR).name for obj in analysis.learned]
    moved = _move_files(folder, analysis.files)
    result = {
        "tool": name,
        "kind": "analysis",
        "args": _plain(args),
        "metrics": _plain(analysis.metrics),
        "tables": _plain(analysis.tables),
        "summary": analysis.summary,
        "figures": figure_files,
        "learned": [f"{LEARNED_DIR}/{f}" for f in learned_files],
        "files": moved,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "deepstrata_version": __version__,
    }
    atomic_write_text(folder / RESULT, json.dumps(result, indent=2) + "\n")
    return folder


def scratch_dir(run: Run, name: str) -> Path:
    """A fresh hidden folder under `RUN/tools/` for files an analysis returns in `Analysis.files`.

    It is on the run's file system, so `write_analysis` moves the files rather than copying them,
    and it is removed once they are moved; a tool that fails removes it itself.
    """
    import tempfile

    base = run.path / TOOLS_DIR
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))


def _move_files(folder: Path, files: Mapping[str, Path]) -> list[str]:
    """Move each returned file into `folder` under its name (checked to stay inside); remove emptied scratch folders."""
    from deepstrata.run.safe_paths import inside

    moved, sources = [], set()
    for name, source in files.items():
        target = inside(folder, name, what="tool output file")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), target)
        moved.append(name)
        sources.add(Path(source).parent)
    for parent in sources:
        if parent.name.startswith(".") and parent.parent.name == TOOLS_DIR and not any(parent.iterdir()):
            parent.rmdir()
    return moved


def saved_learned(run: Run | str | Path, tool: str, name: str) -> Learned:
    """The learned object `name` that the latest `tool` analysis of `run` fitted and saved, rebuilt (no refit).

    E.g. `saved_learned(run, "ood", "ood_mahalanobis")` or `saved_learned(run, "calibration", "temperature_scaling")`.
    """
    from deepstrata.errors import UserError
    from deepstrata.learned.base import load_learned

    run = run if isinstance(run, Run) else Run.open(run)
    result = run.latest_tool_result(tool)
    if result is None:
        raise UserError(f"'{run.path}' has no '{tool}' result; run `strata {tool.replace('_', '-')} {run.path}` first")
    saved = {Path(f).stem: Path(result["dir"]) / f for f in result.get("learned", [])}
    if name not in saved:
        choices = ", ".join(sorted(saved)) or "none"
        raise UserError(f"the latest '{tool}' result of '{run.path}' saved no learned object '{name}' (saved: {choices})")
    return load_learned(saved[name])


# Files of a trained run that describe its training or its model's outputs, not what the model
# needs to be used: a derived run does not inherit them (they would describe the parent). The
# model's own files (model.json, model.safetensors and its checksum) are written anew.
NOT_INHERITED = frozenset({"config.yaml", "run.json", "metrics.jsonl", "report.html", "test_predictions.npz", "baselines.json"})


def inherited(path: Path) -> bool:
    """Whether a derived run copies this file of its parent (tokenizer.json, vocab.json: yes)."""
    name = path.name
    return path.is_file() and name not in NOT_INHERITED and not name.startswith(("model.", ".")) and not name.endswith(".png")


def write_derived(parent: Run, name: str, args: Mapping[str, Any], derived: Derived) -> Path:
    """Write the transformed model as a new run beside `parent`; returns its directory.

    It holds the parent's config.yaml, the new model.safetensors + model.json (the parent's spec
    updated), the files the model needs to be used (tokenizer.json, vocab.json, ...) and a run.json
    with the parent's split hashes plus `derived_from: {parent, tool, args, metrics}`, where parent
    is the parent's path relative to the new run (runs move together).
    """
    import os

    from deepstrata.run import artifact
    from deepstrata.run.record import environment, write_info
    from deepstrata.run.run_dir import CONFIG, new_run_dir

    parent.require_model()
    spec = {k: v for k, v in parent.spec.items() if k != "deepstrata_version"}
    spec.update(derived.spec_updates)
    new_dir = new_run_dir(parent.path.parent.parent, f"{parent.path.parent.name}-{name}")
    shutil.copyfile(parent.path / CONFIG, new_dir / CONFIG)
    for item in sorted(parent.path.iterdir()):
        if inherited(item):
            shutil.copyfile(item, new_dir / item.name)
    artifact.save_model(derived.model, new_dir, spec, sparse=derived.sparse_weights)
    info = {
        "recipe": parent.info.get("recipe", parent.name),
        "seed": parent.info.get("seed"),
        "status": "finished",
        "split": parent.info.get("split", {}),
        "class_names": parent.info.get("class_names"),
        "parameters": sum(p.numel() for p in derived.model.parameters()),
        "derived_from": {
            "parent": os.path.relpath(parent.path.resolve(), new_dir.resolve()),
            "tool": name,
            "args": _plain(args),
            "metrics": _plain(derived.metrics),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment("cpu"),
    }
    write_info(new_dir, info)
    from deepstrata.report import build_report

    build_report(Run.open(new_dir))
    return new_dir


def _new_stamped_dir(base: Path) -> Path:
    """A fresh `base/YYYYmmdd-HHMMSS[-k]` directory (the same names as run directories)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        candidate = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a result directory under {base}")


def _png_bytes(figure: Any) -> bytes:
    if isinstance(figure, (bytes, bytearray)):
        return bytes(figure)
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)  # a pyplot figure would otherwise stay open; a bare Figure is not tracked
    return buf.getvalue()


def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples become lists, numbers from numpy or torch become floats/ints."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)
