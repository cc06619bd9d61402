"""Magnitude pruning on MNIST: the sparsity-accuracy curve of LeNet-5 and the ResNet, before and after fine-tuning.

Problem: how much of a trained network can be zeroed, and how much does a short fine-tune
with the zeros held win back? Han et al. 2015 pruned LeNet-5 12x (92% of its weights) with no
loss after retraining.
Idea: train `recipes/mnist_lenet.yaml` and `recipes/mnist_resnet.yaml` (seed 0), then run
`strata prune RUN --sparsity S` for S in 0.5 ... 0.95. Each prune is global magnitude
pruning, then 2 epochs of the recipe at 0.1x its learning rate with the zeros held. These
settings are the tool's defaults, fixed before any run and not tuned. Test accuracy is
reported before pruning, right after the cut, and after fine-tuning. The two models run side
by side on one thread each.

    .venv/bin/python benchmarks/run_all.py --only pruning
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, STRATA, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
MODELS = {"LeNet-5": "recipes/mnist_lenet.yaml", "ResNet": "recipes/mnist_resnet.yaml"}
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def prune(run_dir: Path, sparsity: float) -> dict:
    cmd = [STRATA, "prune", str(run_dir), "--sparsity", str(sparsity), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]


def curve(name: str) -> dict:
    metrics, run_dir, wall, _, _ = run_recipe(MODELS[name], "trainer.num_threads=1")
    print(f"{name}: trained, test {metrics['test/accuracy']:.4f} in {wall:.0f} s", file=sys.stderr, flush=True)
    points = {}
    for s in SPARSITIES:
        points[s] = prune(run_dir, s)
        print(name, s, points[s], file=sys.stderr, flush=True)
    return {"base": metrics["test/accuracy"], "points": points}


def main() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(MODELS, pool.map(curve, MODELS)))
    rows = ["| model | sparsity | test accuracy unpruned | after the cut | after 2 fine-tuning epochs | lost (points) |", "|---|---|---|---|---|---|"]
    figures = []
    for name, r in results.items():
        for s, m in r["points"].items():
            lost = 100 * (r["base"] - m["test/accuracy"])
            rows.append(f"| {name} | {m['prune/sparsity']:.2f} | {r['base']:.4f} | {m['test/accuracy_pruned']:.4f} | {m['test/accuracy']:.4f} | {lost:+.2f} |")
        at90 = r["points"][0.9]
        figures.append({"name": f"{name}: test accuracy lost at 90% sparsity after fine-tuning", "value": round(100 * (r["base"] - at90["test/accuracy"]), 2),
                        "unit": "points", "note": f"goal <= 0.5; unpruned {r['base']:.4f}, cut {at90['test/accuracy_pruned']:.4f}, fine-tuned {at90['test/accuracy']:.4f}"})
    emit("pruning", ".venv/bin/python benchmarks/run_all.py --only pruning", figures, table="\n".join(rows),
         description="Global magnitude pruning of the MNIST LeNet-5 and ResNet runs (seed 0), then 2 epochs of each recipe at 0.1x its learning rate with the zeros held (strata prune's defaults); test accuracy on MNIST's 10,000 test images.",
         data={k: {"base": v["base"], "points": {str(s): m for s, m in v["points"].items()}} for k, v in results.items()})


if __name__ == "__main__":
    main()
