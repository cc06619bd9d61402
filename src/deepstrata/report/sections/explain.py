"""Explanations in the report: what the model looks at, on examples it got right and wrong.

Problem: attribution maps written by `strata explain` under `RUN/tools/explain/` are unseen by
someone who reads only the report, and the generic tool-results section would show the grid
among every other figure without saying what it is.
Idea: tools that register `report="explain"` (`strata explain`) are shown here: the latest
result's grid of test examples x methods (`grid.png`, or the highlighted `grid.html` of a text
run, which the tool wrote with every token escaped), then its summary and its table of methods,
with the reason beside each method that did not apply.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.report.sections.tools import section_tools
from deepstrata.run.run import Run

SECTION = "explain"


def explain_tools() -> list[str]:
    """Registered tools that report here."""
    return section_tools(SECTION)


def _grid(result: dict[str, Any]) -> str:
    folder = Path(result.get("dir", ""))
    parts = []
    for filename in result.get("figures") or []:
        path = folder / filename
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(filename)}" src="data:image/png;base64,{data}">')
    page = folder / "grid.html"
    if "grid.html" in (result.get("files") or []) and page.is_file():
        body = re.search(r"<body>(.*)</body>", page.read_text(encoding="utf-8"), flags=re.S)
        parts.append(body.group(1) if body else "")
    return "".join(parts)


@register_report_section("explain")
def explain_section(run: Run) -> Section | None:
    """The latest explain result: its grid of right and wrong test examples x methods, and the methods' table."""
    wanted = set(explain_tools())
    latest = None
    for result in run.tool_results():
        if str(result.get("tool", "")) in wanted:
            latest = result  # oldest first: the last one wins
    if latest is None:
        return None
    parts = [_grid(latest)]
    if latest.get("summary"):
        parts.append(f"<p>{html.escape(str(latest['summary']))}</p>")
    rows = (latest.get("tables") or {}).get("methods") or []
    if rows:
        header = tuple(dict.fromkeys(k for row in rows for k in row))
        parts.append(table_html([tuple("" if row.get(k) is None else row.get(k) for k in header) for row in rows], header))
    files = latest.get("files") or []
    if files:
        parts.append(f"<p><small>{len(files)} overlay file(s) in {html.escape(str(latest.get('dir', '')))}</small></p>")
    return Section("Explanations: what the model looks at", "".join(parts), order=72)
