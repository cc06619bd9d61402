"""Trust: how far to believe the model, in one place of the report.

Problem: calibration, uncertainty, out-of-distribution and adversarial analyses each answer part
of one question, "when is this model wrong, and does it know?", and scattered among the other
tool results they are read one at a time, if at all.
Idea: tools that answer it register with `report="trust"` (`@register_tool("ood",
kind="analysis", report="trust")`); this section shows the latest result of each, in a fixed
order (calibration, uncertainty, OOD, attacks, then any other), and for a run that
`strata calibrate` derived, the calibration it carries (ECE and NLL before and after).
"""

from __future__ import annotations

import html

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.report.sections.tools import latest_results, result_html, section_tools
from deepstrata.run.run import Run

SECTION = "trust"
ORDER = ("calibration", "uncertainty", "ood", "attack")


def trust_tools() -> list[str]:
    """Registered tools that report here, in reading order."""
    return sorted(section_tools(SECTION), key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


@register_report_section("trust")
def trust(run: Run) -> Section | None:
    """Latest calibration, uncertainty, OOD and attack results, and a calibrated run's before/after."""
    wanted = trust_tools()
    latest = latest_results(run, wanted)
    parts = []
    derived = run.derived_from or {}
    calibration = run.spec.get("calibration") if run.has_model else None
    if calibration and derived.get("metrics"):
        m = derived["metrics"]
        rows = [
            (name, f"{m[f'test/{key}_before']:.4f}", f"{m[f'test/{key}']:.4f}")
            for name, key in (("accuracy", "accuracy"), ("ECE (15 bins)", "ece"), ("NLL", "nll"), ("Brier", "brier"))
            if f"test/{key}" in m and f"test/{key}_before" in m
        ]
        parts.append(f"<h3>calibrated by {html.escape(str(calibration.get('method')))} (fitted on the validation split)</h3>")
        parts.append(table_html(rows, ("test", "before", "after")))
    for tool in wanted:
        if tool in latest:
            parts.append(f"<h3>{html.escape(tool)}</h3>{result_html(latest[tool])}")
    if not parts:
        return None
    return Section("Trust: calibration, uncertainty, OOD, robustness", "".join(parts), order=70)
