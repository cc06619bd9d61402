"""The privacy-utility curve of DP-SGD on MNIST: test accuracy at epsilon 0.5, 1, 2, 4, 8 (delta 1e-5).

Problem: "private" means nothing without its epsilon, and an epsilon means little without the
accuracy it costs; the literature states both (Abadi et al. 2016; the Opacus MNIST example).
Idea: train `recipes/mnist_dp_sgd.yaml` once per target epsilon (the noise multiplier follows
from it), plus the same recipe with clipping but no noise, which isolates what the noise costs
(it has no privacy guarantee). Each run is a normal `strata train`, one torch thread, two runs
at a time on the two cores; its wall time is therefore that of a shared machine.

    .venv/bin/python benchmarks/run_all.py --only privacy_curve
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
EPSILONS = [0.5, 1.0, 2.0, 4.0, 8.0]
NO_NOISE = "{name: dp_sgd, noise_multiplier: 0.0, max_grad_norm: 1.0}"
# Anchors, test accuracy at (epsilon, delta 1e-5): the Opacus MNIST example's README and Abadi et al. 2016.
OPACUS = {1.19: 0.9463, 3.01: 0.9678, 7.10: 0.9709}
ABADI = {0.5: 0.90, 2.0: 0.95, 8.0: 0.97}


def one(setting: str) -> dict:
    metrics, run_dir, wall, cpu, load = run_recipe(RECIPE, setting, "trainer.num_threads=1")
    info = json.loads((run_dir / "run.json").read_text())
    val = [r["val/accuracy"] for r in read_metrics(run_dir / "metrics.jsonl") if r.get("scope") == "epoch"]
    return {"metrics": metrics, "strategy": info["strategy"], "val": val[-1], "wall": wall, "cpu": cpu, "fit": info["fit_time_s"]}


def main() -> None:
    settings = [f"trainer.strategy.target_epsilon={eps}" for eps in EPSILONS] + [f"trainer.strategy={NO_NOISE}"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, settings))
    rows = ["| target epsilon | epsilon spent | noise multiplier | val accuracy | test accuracy | fit time |", "|---|---|---|---|---|---|"]
    figures = []
    for eps, r in zip([*EPSILONS, None], results):
        s, acc = r["strategy"], r["metrics"]["test/accuracy"]
        spent = f"{s['epsilon']:.3f}" if s["epsilon"] is not None else "none (no noise)"
        rows.append(f"| {eps if eps is not None else 'clipping only'} | {spent} | {s['noise_multiplier']:.3f} | {r['val']:.4f} | {acc:.4f} | {r['fit']:.0f} s |")
        label = f"epsilon {eps:g}" if eps is not None else "clipping only, no noise (no guarantee)"
        figures.append({"name": f"mnist_dp_sgd test accuracy, {label}", "value": round(acc, 4), "unit": "",
                        "note": f"sigma {s['noise_multiplier']:.3f}, {s['steps']} steps, fit {r['fit']:.0f} s (two runs share 2 cores)"})
    by_eps = dict(zip(EPSILONS, results))
    at3 = max((e for e in EPSILONS if e <= 3), key=lambda e: by_eps[e]["metrics"]["test/accuracy"])
    at12 = max((e for e in EPSILONS if e <= 1.2), key=lambda e: by_eps[e]["metrics"]["test/accuracy"])
    for floor, eps, goal in ((0.95, at3, "eps <= 3"), (0.92, at12, "eps <= 1.2")):
        acc = by_eps[eps]["metrics"]["test/accuracy"]
        figures.append({"name": f"best test accuracy at {goal}", "value": round(acc, 4), "unit": "",
                        "note": f"at epsilon {eps:g}; floor {floor} ({'met' if acc >= floor else 'NOT met'})"})
    anchors = "Anchors (test accuracy at delta 1e-5): Opacus MNIST example " + ", ".join(f"{a:.2%} at eps {e}" for e, a in OPACUS.items())
    anchors += "; Abadi et al. 2016 " + ", ".join(f"{a:.0%} at eps {e:g}" for e, a in ABADI.items()) + "."
    emit(
        "privacy_curve",
        ".venv/bin/python benchmarks/run_all.py --only privacy_curve",
        figures,
        table="\n".join(rows),
        description="DP-SGD on MNIST (recipes/mnist_dp_sgd.yaml: LeNet-5 with tanh, Poisson batches of expected size 256, "
                    "clip norm 1, 15 epochs, RDP accountant, delta 1e-5), one run per target epsilon, seed 0. " + anchors,
    )


if __name__ == "__main__":
    main()
