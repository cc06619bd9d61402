"""Forecasts against the truth and the baselines, and the error by horizon.

Problem: one MAE number hides whether a forecaster follows the season, drifts with the
trend, or only wins at short horizons. Idea: plot a few held-out windows (history, truth,
the model's and each baseline's forecast) and the MAE at each step ahead for the model and
the baselines (persistence, seasonal naive, linear AR).
"""

from __future__ import annotations

import json

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run

FORECASTS = "forecasts.json"
STYLES = {"model": ("C3", "-"), "persistence": ("C7", ":"), "seasonal_naive": ("C2", "--"), "linear_ar": ("C0", "-.")}


@register_report_section("forecasts")
def forecasts(run: Run) -> Section | None:
    """Held-out forecast windows and MAE by steps ahead, model against baselines."""
    path = run.run_dir / FORECASTS
    if not path.exists():
        return None
    import matplotlib.pyplot as plt

    data = json.loads(path.read_text(encoding="utf-8"))
    units = data.get("units", "")
    examples = data["examples"]
    fig, axes = plt.subplots(1, len(examples) + 1, figsize=(4.2 * (len(examples) + 1), 3.2), squeeze=False)
    for ax, e in zip(axes[0], examples):
        hist = e["history"]
        steps = range(len(hist), len(hist) + len(e["actual"]))
        ax.plot(range(len(hist)), hist, color="black", lw=1)
        ax.plot(steps, e["actual"], color="black", lw=1, alpha=0.5, label="truth")
        for name, (color, style) in STYLES.items():
            if name in e:
                ax.plot(steps, e[name], color=color, ls=style, lw=1.2, label=name)
        ax.set_title(f"test window {e['index']}", fontsize=9)
        ax.set_ylabel(units)
    axes[0][0].legend(fontsize=7)
    ax = axes[0][-1]
    for name, values in data["mae_by_step"].items():
        color, style = STYLES.get(name, ("C5", "-"))
        ax.plot(range(1, len(values) + 1), values, color=color, ls=style, label=name)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"MAE ({units})")
    ax.set_title("test MAE by horizon", fontsize=9)
    ax.legend(fontsize=7)
    return Section("Forecasts (test) against baselines", figure_html(fig, alt="forecasts and MAE by horizon"), order=32)
