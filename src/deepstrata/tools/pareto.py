"""`strata pareto RUN`: every compressed variant of a model on accuracy, size and latency at once.

Problem: pruning, quantization and distillation each trade accuracy for size or speed, and each
tool reports its own before/after; which variant to ship is only clear when all of them are put
side by side on the same three numbers, measured the same way on the same machine.
Idea: gather the family of the run's model (the trained ancestor of its lineage, every run
derived from it by a tool, at any depth, found beside it under the runs folder, plus any run
named with `--also`, such as a distilled student trained from a recipe), then for each variant:
- the test metric (`--metric`, default `test/accuracy`): the value the run recorded, else the
  one its tool recorded, else the run is evaluated on its test split;
- size on disk: the bytes of the files its model loads from (`model.*` in the run folder,
  without the JSON description and the checksum sidecar);
- latency: the median wall-clock time of one no-grad forward at `--batch-size` (the first test
  batch tiled), every variant timed in turn, round after round, so a load change on the machine
  falls on all of them alike.
A variant is Pareto-optimal when no other is at least as good on all three and better on one.
The figure plots the metric against size and against latency, with the front marked.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase, tool_defaults

_NOT_WEIGHTS = (".json", ".sha256")


def root_of(run: Run) -> Run:
    """The trained ancestor of `run`'s lineage (the run itself when no tool made it)."""
    return Run.open(run.lineage[0]["run_dir"])


def family(root: Run) -> list[Run]:
    """`root` and every run derived from it, directly or through other derived runs, found under its runs folder.

    A derived run lives in `<runs>/<parent folder>-<tool>/<time>/`, so descendants are the runs
    of folders whose name starts with the root's folder name and whose lineage starts at root.
    """
    runs_folder, prefix = root.path.parent.parent, root.path.parent.name
    found, target = [root], root.path.resolve()
    for info in sorted(runs_folder.glob(f"{prefix}-*/*/run.json")):
        try:
            candidate = Run.open(info.parent)
            if candidate.has_model and Path(candidate.lineage[0]["run_dir"]).resolve() == target:
                found.append(candidate)
        except (UserError, OSError, KeyError, ValueError):
            continue  # a half-written or foreign folder is not a variant
    return found


def weights_bytes(run: Run) -> int:
    """Bytes on disk of the files the run's model is loaded from (`model.*` but its JSON and checksums)."""
    files = [p for p in run.path.glob("model.*") if p.is_file() and not p.name.endswith(_NOT_WEIGHTS)]
    if not files:
        raise UserError(f"pareto: '{run.path}' holds no model files; train it or derive it first")
    return sum(p.stat().st_size for p in files)


def variant_name(run: Run, root: Run) -> str:
    """The tool chain that made `run` from `root`, each tool with the arguments that differ from its defaults
    ("trained" for the root, "also: NAME" for a run outside the lineage)."""
    chain = run.lineage
    if Path(chain[0]["run_dir"]).resolve() != root.path.resolve():
        return f"also: {run.name}"
    steps = []
    for step in chain[1:]:
        defaults = tool_defaults(step["tool"])
        changed = {k: v for k, v in (step.get("args") or {}).items() if defaults.get(k, object()) != v}  # what the user chose
        steps.append(f"{step['tool']}({', '.join(f'{k}={v}' for k, v in changed.items())})")
    return " > ".join(steps) or "trained"


def recorded_metric(run: Run, metric: str) -> float | None:
    """The run's own test record of `metric`, else the one its tool stored in run.json; None if neither has it."""
    value = run.test_metrics.get(metric)
    if value is None:
        value = ((run.derived_from or {}).get("metrics") or {}).get(metric)
    return None if value is None else float(value)


def pareto_front(points: list[tuple[float, float, float]], *, higher_is_better: bool) -> list[bool]:
    """For (metric, size, latency) triples: True where no other point is at least as good on all three and better on one."""
    sign = 1.0 if higher_is_better else -1.0
    scored = [(sign * m, -s, -t) for m, s, t in points]  # larger is better on every axis
    return [not any(all(o >= p for o, p in zip(other, me)) and other != me for other in scored) for me in scored]


@register_tool("pareto", kind="analysis", report="compression")
def pareto(
    run: Run,
    *,
    also: list[str] = [],  # noqa: B006 - read, never mutated
    metric: str = "test/accuracy",
    mode: Literal["max", "min"] = "max",
    batch_size: int = 64,
    rounds: int = 15,
    warmup: int = 2,
) -> Analysis:
    """Accuracy, size on disk and latency of every variant of the run's model, with the Pareto front.

    also: more run folders to include (a distilled student, a model trained from another recipe).
    metric: the test metric to compare (test/bits_per_char for a language model, with --mode min).
    mode: max when a higher metric is better, min when lower is.
    batch_size: the batch every variant is timed at (the first test batch tiled).
    rounds: timed forwards per variant, taken in turn across variants; the median is reported.
    warmup: untimed forwards per variant before the rounds.
    """
    import torch

    if batch_size < 1 or rounds < 1 or warmup < 0:
        raise UserError(f"pareto: batch_size and rounds must be >= 1 and warmup >= 0, got {batch_size}, {rounds}, {warmup}")
    if not metric.startswith("test/"):
        raise UserError(f"pareto: metric must be a test metric such as test/accuracy, got '{metric}'")
    root = root_of(run)
    variants = family(root)
    seen = {v.path.resolve() for v in variants}
    for extra in also:
        other = Run.open(extra)
        other.require_model()
        if other.path.resolve() not in seen:
            variants.append(other)
            seen.add(other.path.resolve())
    phase(f"pareto: {len(variants)} variant(s) of {root.path}")

    task = root.task()
    batch = next(iter(root.loader("test")), None)
    if batch is None:
        raise UserError(f"pareto: the test split of '{root.path}' is empty")
    inputs = task.repeat_inputs(task.model_inputs(batch), batch_size)

    from deepstrata.tools.profile import entry_point

    models, rows = [], []
    for v in variants:
        value = recorded_metric(v, metric)
        if value is None:
            phase(f"pareto: evaluating {v.path} on its test split")
            value = v.evaluate("test").get(metric)
            if value is None:
                raise UserError(f"pareto: '{v.path}' has no {metric}; choose --metric among its test metrics: {sorted(v.evaluate('test'))}")
        models.append(entry_point(v.model().eval()))
        rows.append({"variant": variant_name(v, root), "run": str(v.path), metric: float(value), "size_bytes": weights_bytes(v)})

    phase(f"pareto: {warmup} warm-up + {rounds} timed forwards per variant at batch {batch_size}, in turn")
    times: list[list[float]] = [[] for _ in models]
    with torch.no_grad():
        for forward in models:
            for _ in range(warmup):
                forward(*inputs)
        for _ in range(rounds):
            for i, forward in enumerate(models):
                start = time.perf_counter()
                forward(*inputs)
                times[i].append(time.perf_counter() - start)
    for row, t in zip(rows, times):
        row["latency_ms"] = round(statistics.median(t) * 1000.0, 3)
    front = pareto_front([(r[metric], r["size_bytes"], r["latency_ms"]) for r in rows], higher_is_better=mode == "max")
    base = rows[0]
    for row, on_front in zip(rows, front):
        row["size_ratio"] = round(base["size_bytes"] / row["size_bytes"], 3)
        row["speedup"] = round(base["latency_ms"] / row["latency_ms"], 3) if row["latency_ms"] > 0 else float("inf")
        row["pareto"] = bool(on_front)

    threads = torch.get_num_threads()
    metrics = {"variants": float(len(rows)), "pareto_variants": float(sum(front)), "threads": float(threads)}
    summary = (
        f"{len(rows)} variant(s) of {root.name}: {metric} from each run's test record (or its test split), size = bytes of its model files, "
        f"latency = median of {rounds} no-grad forwards at batch {batch_size} on {threads} thread(s), variants timed in turn. "
        f"{sum(front)} on the Pareto front (no other variant at least as good on all three and better on one)."
    )
    return Analysis(metrics=metrics, tables={"variants": rows}, figures={"pareto": _figure(rows, metric)}, summary=summary)


def _figure(rows: list[dict[str, Any]], metric: str) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2 + 0.16 * len(rows)))
    grid = fig.add_gridspec(2, 2, height_ratios=[4.2, 0.16 * len(rows) + 0.3])
    for col, (key, label) in enumerate((("size_bytes", "size on disk (KiB)"), ("latency_ms", "latency (ms)"))):
        ax = fig.add_subplot(grid[0, col])
        scale = 1024.0 if key == "size_bytes" else 1.0
        for i, row in enumerate(rows):
            x, y = row[key] / scale, row[metric]
            ax.scatter([x], [y], s=60, marker="o" if row["pareto"] else "x", color=f"C{i % 10}", label=f"{i}: {row['variant'][:90]}")
            ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    fig.axes[0].set_title("o: on the Pareto front, x: dominated", fontsize=10)
    legend = fig.add_subplot(grid[1, :])
    legend.axis("off")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    legend.legend(handles, labels, loc="upper left", fontsize=7, ncol=1, frameon=False)
    fig.tight_layout()
    return fig
