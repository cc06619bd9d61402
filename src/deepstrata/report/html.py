"""The run report: one self-contained HTML file built from registered sections.

Problem: a run's numbers, curves and mistakes are spread over files that nobody opens.
Idea: `report.html` gathers them in one page with PNG figures embedded as base64 (matplotlib
Agg backend), so it opens anywhere offline. Each part of the page is a registered report
section, `@register_report_section("name")`, a function from the run's record to a
`Section` (or None when it does not apply); later capabilities add sections the same way.
Sections receive the opened `Run` (`deepstrata.run.run`), never a directory to rebuild by hand.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepstrata.run.atomic import atomic_write_text
from deepstrata.run.run import Run
from deepstrata.run.run_dir import REPORT


@dataclass
class Section:
    """One part of the report. `order` sorts sections; `html` is a trusted fragment."""

    title: str
    html: str
    order: int = 50


def figure_html(fig: Any, *, alt: str) -> str:
    """A matplotlib figure as an embedded <img>; closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; }
th { background: #f4f4f4; } pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .85rem; }
img { max-width: 100%; }
"""


def build_report(run: str | Path | Run) -> Path:
    """Render every applicable registered section into `<run_dir>/report.html`."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; the figures become PNG bytes
    from deepstrata.registry import REPORT_SECTIONS

    run = run if isinstance(run, Run) else Run.open(run)
    sections = []
    for name, make in sorted(REPORT_SECTIONS.load_all().items()):
        section = make(run)
        if section is not None:
            sections.append(section)
    sections.sort(key=lambda s: (s.order, s.title))
    title = html.escape(f"deepstrata run: {run.config.get('name', run.path.name)}")
    body = "".join(f"<section><h2>{html.escape(s.title)}</h2>{s.html}</section>" for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1><p>{html.escape(str(run.run_dir))}</p>{body}</body></html>"
    )
    return atomic_write_text(run.path / REPORT, page)
