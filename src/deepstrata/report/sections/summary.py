"""The report's head: final metrics, resolved config and environment.

Problem: a result without the settings and versions that produced it cannot be reproduced.
Idea: the first sections show the final test metrics, the resolved recipe exactly as saved,
and the environment (versions, device, seed, wall time).
"""

from __future__ import annotations

import html

import yaml

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.run.run import Run


@register_report_section("metrics_table")
def metrics_table(run: Run) -> Section | None:
    """Final test metrics (and which epoch's weights produced them), then the last epoch's train and validation metrics."""
    from deepstrata.training.test_weights import describe

    rows = [(k, v) for k, v in sorted(run.test_metrics.items())]
    epochs = run.scope("epoch")
    if epochs:
        rows += [(k, v) for k, v in sorted(epochs[-1].items()) if k.startswith(("train/", "val/"))]
    if not rows:
        return None
    tested = describe(run.tested_weights)
    note = f"<p>Test metrics from the weights of {html.escape(tested)}; train/ and val/ rows are the last epoch's.</p>" if tested else ""
    return Section("Final metrics", note + table_html(rows, ("metric", "value")), order=10)


@register_report_section("config")
def config(run: Run) -> Section | None:
    """The resolved recipe as saved in config.yaml."""
    if not run.config:
        return None
    text = yaml.safe_dump(run.config, sort_keys=False)
    return Section("Resolved config", f"<pre>{html.escape(text)}</pre>", order=90)


@register_report_section("environment")
def environment(run: Run) -> Section | None:
    """Versions, device, seed, split sizes and wall time."""
    if not run.info:
        return None
    info = run.info
    rows = [(k, v) for k, v in info.get("environment", {}).items()]
    rows += [("seed", info.get("seed")), ("parameters", info.get("parameters")), ("wall time (s)", info.get("wall_time_s")), ("fit time (s)", info.get("fit_time_s"))]
    rows += [(f"split: {k}", v) for k, v in info.get("split", {}).items()]
    return Section("Environment", table_html(rows, ("item", "value")), order=95)
