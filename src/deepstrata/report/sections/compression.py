"""Compression: every variant of the run's model on accuracy, size and latency, with the Pareto front.

Problem: a pruned, quantized or distilled variant's own report says what its tool changed, but
not how it compares with the other variants of the same model, which is the question a user
choosing one to ship has.
Idea: the latest result of each tool registered with `report="compression"` (`strata pareto`),
with its table and figure, in one section.
"""

from __future__ import annotations

import html

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section
from deepstrata.report.sections.tools import latest_results, result_html, section_tools
from deepstrata.run.run import Run

SECTION = "compression"


@register_report_section("compression")
def compression(run: Run) -> Section | None:
    """The latest Pareto comparison of the run's model variants (accuracy, size on disk, latency)."""
    latest = latest_results(run, section_tools(SECTION))
    if not latest:
        return None
    body = "".join(f"<h3>{html.escape(tool)}</h3>{result_html(latest[tool])}" for tool in sorted(latest))
    return Section("Compression: variants on accuracy, size and latency", body, order=74)
