"""CO2 forecasting (recipes/co2_lstm.yaml, recipes/co2_gru.yaml): test MAE against three baselines.

Problem: a forecaster's MAE is meaningless without baselines on the same windows.
Idea: train both recipes as a user would; report the model's test MAE (last 20% of the
series, 52 weeks ahead) next to persistence, seasonal naive and linear AR, and the
reduction against persistence and seasonal naive (goal >= 20% against both).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe, time_figures  # noqa: E402


def main() -> None:
    figures, rows = [], []
    for cell in ("lstm", "gru"):
        m, run_dir, wall, cpu, load = run_recipe(f"recipes/co2_{cell}.yaml")
        figures += [
            {"name": f"co2_{cell} test/mae", "value": m["test/mae"], "unit": "ppm", "note": "52 weeks ahead, last 20% held out"},
            {"name": f"co2_{cell} MAE reduction vs persistence", "value": m["test/skill_vs_persistence"], "unit": "", "note": "goal >= 0.20"},
            {"name": f"co2_{cell} MAE reduction vs seasonal naive", "value": m["test/skill_vs_seasonal_naive"], "unit": "", "note": "goal >= 0.20"},
        ]
        figures += time_figures(f"co2_{cell}", run_dir, wall, cpu, load)
        rows.append(m)
    m = rows[0]
    figures += [
        {"name": "test/persistence_mae", "value": m["test/persistence_mae"], "unit": "ppm", "note": "last value repeated"},
        {"name": "test/seasonal_naive_mae", "value": m["test/seasonal_naive_mae"], "unit": "ppm", "note": "value 52 weeks earlier"},
        {"name": "test/linear_ar_mae", "value": m["test/linear_ar_mae"], "unit": "ppm", "note": "least squares on the training windows"},
    ]
    table = "| model | test MAE (ppm) |\n|---|---|\n" + "\n".join(
        [f"| LSTM | {rows[0]['test/mae']:.3f} |", f"| GRU | {rows[1]['test/mae']:.3f} |", f"| linear AR | {m['test/linear_ar_mae']:.3f} |",
         f"| seasonal naive | {m['test/seasonal_naive_mae']:.3f} |", f"| persistence | {m['test/persistence_mae']:.3f} |"]
    )
    emit(
        "co2_forecasting",
        ".venv/bin/python benchmarks/co2_forecasting.py",
        figures,
        table=table,
        description="Weekly Mauna Loa CO2 (statsmodels): 104 weeks in, 52 weeks out; test = last 20% of the series (from 1993-04).",
    )


if __name__ == "__main__":
    main()
