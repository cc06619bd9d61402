"""What moves DP-SGD's privacy-utility curve at a fixed epsilon: weight averaging and larger batches.

Problem: at a fixed (epsilon, delta) the accuracy of DP-SGD depends on choices that cost no
privacy: averaging the private iterates is post-processing, and a larger batch trades more
noise per step (a larger sigma) for fewer, better-averaged steps (De et al. 2022).
Idea: train `recipes/mnist_dp_sgd.yaml` at target epsilon 1 with an exponential moving average
of the weights (the `ema` callback, decay 0.999), and with 4x the batch at 4x the learning
rate, two runs side by side on one thread each; compare on validation accuracy (the choice)
and report test accuracy (the record). The plain recipe at epsilon 1 is the privacy_curve
benchmark's row.

    .venv/bin/python benchmarks/run_all.py --only privacy_options
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402

from deepstrata.training.callbacks.metrics_logger import read_metrics  # noqa: E402

RECIPE = "recipes/mnist_dp_sgd.yaml"
VARIANTS = {
    "weight averaging (ema 0.999)": ["callbacks=[{name: ema, decay: 0.999}]"],
    "4x batch (1024) at 4x lr (4.0)": ["data.batch_size=1024", "optimizer.lr=4.0"],
}


def one(sets: list[str]) -> dict:
    metrics, run_dir, _, _, _ = run_recipe(RECIPE, "trainer.strategy.target_epsilon=1.0", "trainer.num_threads=1", *sets)
    info = json.loads((run_dir / "run.json").read_text())
    val = [r["val/accuracy"] for r in read_metrics(run_dir / "metrics.jsonl") if r.get("scope") == "epoch"]
    return {"test": metrics["test/accuracy"], "val": val[-1], "strategy": info["strategy"], "fit": info["fit_time_s"]}


def main() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(VARIANTS, pool.map(one, VARIANTS.values())))
    rows = ["| variant (target epsilon 1) | settings | epsilon spent | sigma | steps | val accuracy | test accuracy | fit time |",
            "|---|---|---|---|---|---|---|---|"]
    figures = []
    for name, r in results.items():
        s = r["strategy"]
        rows.append(f"| {name} | `{' '.join(VARIANTS[name])}` | {s['epsilon']:.3f} | {s['noise_multiplier']:.3f} | {s['steps']} | "
                    f"{r['val']:.4f} | {r['test']:.4f} | {r['fit']:.0f} s |")
        figures.append({"name": f"{name}: val accuracy", "value": round(r["val"], 4), "unit": "", "note": "the choice between variants"})
        figures.append({"name": f"{name}: test accuracy", "value": round(r["test"], 4), "unit": "",
                        "note": f"epsilon {s['epsilon']:.3f}, fit {r['fit']:.0f} s (two runs share 2 cores)"})
    emit(
        "privacy_options",
        ".venv/bin/python benchmarks/run_all.py --only privacy_options",
        figures,
        table="\n".join(rows),
        description="recipes/mnist_dp_sgd.yaml at target epsilon 1 (delta 1e-5), seed 0, with weight averaging or with larger batches; "
                    "the plain recipe at epsilon 1 is in privacy_curve.",
    )


if __name__ == "__main__":
    main()
