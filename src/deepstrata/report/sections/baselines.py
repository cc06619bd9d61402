"""Classical baselines beside the deep model: the report says when deep learning did not pay.

Problem: a run report that shows only the deep model's accuracy cannot tell the reader whether a
two-second logistic regression would have done as well. Idea: when `strata baseline RECIPE --run
RUN` has written `baselines.json` into the run, show each classical model's test score and fit
time next to the deep model's, and state plainly which wins or ties (within one test example).
"""

from __future__ import annotations

import html

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.run.run import Run


@register_report_section("baselines")
def baselines(run: Run) -> Section | None:
    """Classical scikit-learn baselines on the same split, beside the deep model."""
    from deepstrata.baselines.classical import BASELINES_FILE, read_baselines

    data = read_baselines(run.run_dir / BASELINES_FILE)
    if not data or not data.get("results"):
        return None
    results = data["results"]
    metric = results[0]["metric"]
    deep = run.test_metrics.get(f"test/{metric}")
    fit_time = run.info.get("fit_time_s")
    rows = [(r["model"], r["value"], r["fit_time_s"]) for r in results]
    if deep is not None:
        rows.insert(0, (f"deep model ({run.config.get('model', {}).get('name', '?')})", deep, fit_time if fit_time is not None else "?"))
    text = table_html(rows, ("model", f"test {metric}", "fit time (s)"))
    if deep is not None:
        higher_better = metric == "accuracy"
        best = max(results, key=lambda r: r["value"]) if higher_better else min(results, key=lambda r: r["value"])
        tol = 1.0 / max(1, int(data.get("split", {}).get("test_size") or 1)) if higher_better else 1e-3 * abs(deep)
        diff = (best["value"] - deep) if higher_better else (deep - best["value"])
        if diff > tol:
            verdict = f"The classical {best['model']} beats the deep model ({best['value']:.4f} vs {deep:.4f} test {metric})."
        elif diff >= -tol:
            verdict = f"The classical {best['model']} ties the deep model ({best['value']:.4f} vs {deep:.4f} test {metric})."
        else:
            verdict = f"The deep model beats every classical baseline (best: {best['model']}, {best['value']:.4f} vs {deep:.4f} test {metric})."
        text = f"<p>{html.escape(verdict)}</p>" + text
    return Section("Classical baselines (same split)", text, order=15)
