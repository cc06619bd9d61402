"""Fairness: the latest audit of the run, and what a threshold post-processing changed.

Problem: an audit's result.json (per-group rates, gaps with intervals) is invisible to someone
reading the report, and a run written by `strata fair-threshold` does not say, on its page,
which thresholds it applies or what they cost.
Idea: the latest result of each tool registered with `report="fairness"` (`strata audit`),
shown with its tables; and for a run derived by fair_threshold, its per-group thresholds and
the accuracy and gaps before and after, on validation (where they were fitted) and test.
"""

from __future__ import annotations

import html

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.report.sections.tools import latest_results, result_html, section_tools
from deepstrata.run.run import Run

SECTION = "fairness"


@register_report_section("fairness")
def fairness(run: Run) -> Section | None:
    """Latest fairness audit, and a threshold post-processed run's thresholds and before/after gaps."""
    latest = latest_results(run, section_tools(SECTION))
    parts = []
    thresholds = run.spec.get("fair_threshold") if run.has_model else None
    derived = run.derived_from or {}
    if thresholds and derived.get("metrics"):
        m, group = derived["metrics"], str(thresholds.get("group"))
        parts.append(
            f"<h3>per-group thresholds for {html.escape(group)} ({html.escape(str(thresholds.get('constraint')))}, fitted on the validation split)</h3>"
        )
        parts.append(table_html([(level, f"{tau:.4f}") for level, tau in zip(thresholds.get("levels", []), thresholds.get("thresholds", []))], ("group", "threshold on z1 - z0")))
        rows = []
        for split in ("val", "test"):
            for name, key in (("accuracy", "accuracy"), ("DP difference", f"demographic_parity_difference/{group}"), ("EO difference", f"equalized_odds_difference/{group}")):
                if f"{split}/{key}" in m:
                    rows.append((f"{split} {name}", f"{m[f'{split}/{key}_before']:.4f}", f"{m[f'{split}/{key}']:.4f}"))
        parts.append(table_html(rows, ("", "before", "after")))
    for tool in sorted(latest):
        parts.append(f"<h3>{html.escape(tool)}</h3>{result_html(latest[tool])}")
    if not parts:
        return None
    return Section("Fairness: decisions by group", "".join(parts), order=72)
