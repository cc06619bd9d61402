"""What tools found and made: analysis results and a derived run's lineage, in the report.

Problem: a tool's result.json under `RUN/tools/` is invisible to someone reading the report, and
a pruned or calibrated run's report does not say what it was derived from.
Idea: `result_html` renders any analysis result (summary, metrics, tables, figures) the same way;
a tool draws its own section by registering a report section under its own name (see
tools/profile.py), a tool registered with `report="<section>"` appears in that section (the "trust"
section gathers calibration, uncertainty, OOD and attacks), every other tool's latest result
appears in the generic "tool_results" section, and a derived run shows its lineage from the trained ancestor.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from deepstrata.registry import REGISTRIES, REPORT_SECTIONS, register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.run.run import Run

MAX_ROWS = 200  # a table longer than this (every layer of a ViT-B) is cut, with a note


def result_html(result: dict[str, Any]) -> str:
    """One analysis result (result.json plus its "dir") as an HTML fragment."""
    parts = []
    if result.get("summary"):
        parts.append(f"<p>{html.escape(result['summary'])}</p>")
    metrics = result.get("metrics") or {}
    if metrics:
        parts.append(table_html([(k, v) for k, v in metrics.items()], ("metric", "value")))
    for name, rows in (result.get("tables") or {}).items():
        if not rows:
            continue
        header = tuple(dict.fromkeys(k for row in rows for k in row))
        shown = rows[:MAX_ROWS]
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3>")
        parts.append(table_html([tuple(row.get(k, "") for k in header) for row in shown], header))
        if len(rows) > MAX_ROWS:
            parts.append(f"<p>{len(rows) - MAX_ROWS} more rows in {html.escape(str(Path(result.get('dir', '')) / 'result.json'))}.</p>")
    folder = Path(result.get("dir", ""))
    for filename in result.get("figures") or []:
        path = folder / filename
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(filename)}" src="data:image/png;base64,{data}">')
    if result.get("args"):
        args = ", ".join(f"{k}={v!r}" for k, v in result["args"].items())
        parts.append(f"<p><small>arguments: {html.escape(args)}; folder: {html.escape(str(folder))}</small></p>")
    return "".join(parts)


def section_tools(section: str) -> list[str]:
    """Registered tools whose results a report section shows (`register_tool(..., report=section)`), sorted."""
    tools = REGISTRIES["tool"]
    return sorted(n for n in tools.names() if tools.meta(n).get("report") == section)


def latest_results(run: Run, tools: list[str]) -> dict[str, dict[str, Any]]:
    """tool -> the newest of the run's results by that tool, for the tools named."""
    wanted, latest = set(tools), {}
    for result in run.tool_results():
        tool = str(result.get("tool", ""))
        if tool in wanted:
            latest[tool] = result  # oldest first: the last one wins
    return latest


@register_report_section("tool_results")
def tool_results(run: Run) -> Section | None:
    """The latest result of each analysis tool that has no report section of its own."""
    own_sections = set(REPORT_SECTIONS.names())
    latest: dict[str, dict[str, Any]] = {}
    for result in run.tool_results():
        tool = str(result.get("tool", ""))
        if tool and tool not in own_sections and not _reported_elsewhere(tool, own_sections):
            latest[tool] = result  # oldest first: the last one wins
    if not latest:
        return None
    body = "".join(f"<h3>{html.escape(tool)}</h3>{result_html(result)}" for tool, result in sorted(latest.items()))
    return Section("Tool results", body, order=75)


def _reported_elsewhere(tool: str, sections: set[str]) -> bool:
    """A tool registered with `report="<section>"` is shown by that section (e.g. "trust")."""
    from deepstrata.errors import UserError
    from deepstrata.registry import REGISTRIES

    try:
        return REGISTRIES["tool"].meta(tool).get("report") in sections
    except UserError:  # a result left by a tool that no longer exists: show it here
        return False


@register_report_section("lineage")
def lineage(run: Run) -> Section | None:
    """For a run a tool derived from another: the chain from the trained run, with each tool's arguments."""
    if not run.derived_from:
        return None
    rows = []
    for step in run.lineage:
        args = ", ".join(f"{k}={v!r}" for k, v in (step.get("args") or {}).items())
        rows.append((step["run_dir"], step["tool"] or "(trained)", args))
    metrics = run.derived_from.get("metrics") or {}
    text = table_html(rows, ("run", "made by", "arguments"))
    if metrics:
        text += table_html([(k, v) for k, v in metrics.items()], ("change", "value"))
    return Section("Derived from", text, order=5)
