"""Runs side by side: one self-contained HTML page that overlays their curves and diffs their recipes.

Problem: two run reports open in two tabs do not say which run learned faster, which tested
better, or which of the fifty recipe keys made the difference. Idea: `compare.html` draws every
metric's training (dashed) and validation (solid) curves of all runs on one axis per metric, puts
the test metrics in one table with a column per run, and lists only the config keys (flattened to
dotted paths) whose values differ; figures are PNG embedded as base64, like report.html.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepstrata.errors import UserError
from deepstrata.report.html import STYLE, figure_html, table_html
from deepstrata.run.atomic import atomic_write_text
from deepstrata.run.run import Run

ABSENT = "(absent)"
COLUMNS = 3  # metric axes per row of the curves figure


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.01}} -> {"optimizer.lr": 0.01}; lists stay whole values."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree} if prefix else {}


def config_diff(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The dotted keys whose values are not the same in every config: {key: [value per config]}."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat))
    diff = {}
    for key in keys:
        values = [f.get(key, ABSENT) for f in flat]
        if any(json.dumps(v, sort_keys=True, default=str) != json.dumps(values[0], sort_keys=True, default=str) for v in values[1:]):
            diff[key] = values
    return diff


def labels(runs: Sequence[Run]) -> list[str]:
    """Short unique names: <recipe folder>/<timestamp>, or the full path where those collide."""
    short = [f"{r.path.parent.name}/{r.path.name}" for r in runs]
    return short if len(set(short)) == len(short) else [str(r.path) for r in runs]


def curves_figure(runs: Sequence[Run], names: Sequence[str]) -> Any:
    """One axis per metric; each run one colour, validation solid (circles), training dashed (triangles), against the epoch."""
    import matplotlib.pyplot as plt

    from deepstrata.report.sections.curves import thin_ticks

    metrics = sorted({k.split("/", 1)[1] for r in runs for rec in r.history for k in rec if k.startswith(("train/", "val/"))})
    cols = min(COLUMNS, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.flat, metrics):
        for i, (run, name) in enumerate(zip(runs, names)):
            for split, style, marker in (("val", "-", "o"), ("train", "--", "^")):
                pts = [(rec["epoch"], rec[f"{split}/{metric}"]) for rec in run.history if rec.get(f"{split}/{metric}") is not None and "epoch" in rec]
                if pts:
                    ax.plot(*zip(*pts), style, color=colours[i % len(colours)], marker=marker, ms=3, label=f"{name} {split}")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        thin_ticks(ax.xaxis, integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}  # label -> handle, over every axis (a run may lack the first metric)
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(text, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=min(4, max(1, len(legend))), fontsize="small")
    return fig


def metrics_table(runs: Sequence[Run], names: Sequence[str]) -> str:
    """Test metrics, one row per metric and one column per run."""
    tests = [r.test_metrics for r in runs]
    keys = sorted(set().union(*tests))
    if not keys:
        return "<p>None of these runs has a test record.</p>"
    rows = [(key, *(t.get(key, ABSENT) for t in tests)) for key in keys]
    return table_html(rows, ("metric", *names))


def diff_table(runs: Sequence[Run], names: Sequence[str]) -> str:
    diff = config_diff([r.config for r in runs])
    if not diff:
        return "<p>The configs are identical.</p>"
    # values as written in config.yaml (0.0003, not a 4-decimal rounding)
    rows = [(key, *(json.dumps(v, default=str) if isinstance(v, (list, dict)) else str(v) for v in values)) for key, values in diff.items()]
    return f"<p>{len(diff)} key(s) differ; identical keys are left out.</p>" + table_html(rows, ("config key", *names))


def build_comparison(runs: Sequence[str | Path | Run], out: str | Path = "compare.html") -> Path:
    """Write the comparison page of `runs` (two or more run directories) to `out`; returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; the figures become PNG bytes
    opened = [r if isinstance(r, Run) else Run.open(r) for r in runs]
    if len(opened) < 2:
        raise UserError(f"compare needs at least two runs, got {len(opened)}; give two or more run directories (strata runs lists them)")
    names = labels(opened)
    listing = table_html([(n, str(r.path), r.name) for n, r in zip(names, opened)], ("run", "directory", "recipe"))
    parts = [f"<section><h2>Runs</h2>{listing}</section>"]
    if any(r.history for r in opened):
        fig = curves_figure(opened, names)
        parts.append(f"<section><h2>Curves (validation solid, training dashed)</h2>{figure_html(fig, alt='overlaid learning curves')}</section>")
    parts.append(f"<section><h2>Test metrics</h2>{metrics_table(opened, names)}</section>")
    parts.append(f"<section><h2>Config differences</h2>{diff_table(opened, names)}</section>")
    title = html.escape(f"deepstrata: {len(opened)} runs compared")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1>{''.join(parts)}</body></html>"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out, page)
