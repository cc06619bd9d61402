"""Speedruns: wall time from `strata train` to the test metric, over 5 seeds, beside a plain script.

Problem: "fast" means nothing without the clock a user sees (from pressing enter to the test
figure: imports, data, setup, training, test) and a reference for what the same work costs
without the toolkit.
Idea: for each speedrun recipe and seeds 0-4, run `strata train` as a user does and read
run.json: the test accuracy and `timing.process_to_test_s` (process start to the test
metrics; the report is built after it) and `timing.process_to_fit_s` (start-up). Beside each
run, in the same benchmark, the same network, data split, optimiser, schedule and epochs as a
plain PyTorch script (benchmarks/_speedrun_plain.py) on the thread count the run chose, timed
on the same clock; its parameter count must equal the run's. The ratio is the toolkit's time
over the script's, per seed, reported as the median.

    python benchmarks/speedrun.py            # about 6 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2, 3, 4)
GOALS = {  # recipe: (data folder under $DEEPSTRATA_DATA or None, accuracy goal, seconds goal), from issue 20
    "digits_speedrun": (None, 0.985, 6.0),
    "mnist_speedrun": ("mnist", 0.990, 20.0),
    "fashion_speedrun": ("fashion_mnist", 0.910, 60.0),
}


def strata_run(recipe: Path, seed: int) -> tuple[float, dict]:
    """(wall seconds of the whole `strata train`, its run.json plus the test metrics)."""
    metrics, run_dir, wall, _, _ = run_recipe(str(recipe), f"seed={seed}")
    return wall, {**json.loads((run_dir / "run.json").read_text()), "test_metrics": metrics}


def plain_run(recipe: Path, seed: int, threads: int) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / "_speedrun_plain.py"), str(recipe), "--seed", str(seed), "--threads", str(threads)]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}  # as the strata CLI sets it
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
    figures, rows, data = [], [], {}
    for name, (folder, acc_goal, time_goal) in GOALS.items():
        recipe = REPO / "recipes" / f"{name}.yaml"
        if not recipe.is_file():
            print(f"skipping {name}: no {recipe.relative_to(REPO)}", flush=True)
            continue
        if folder and not (Path(os.environ["DEEPSTRATA_DATA"]) / folder).is_dir():
            print(f"skipping {name}: no $DEEPSTRATA_DATA/{folder}", flush=True)
            continue
        per_seed = []
        for seed in SEEDS:
            wall, info = strata_run(recipe, seed)
            plain = plain_run(recipe, seed, info["threads"]["threads"])
            if plain["parameters"] != info["parameters"]:
                raise SystemExit(f"{name}: the plain script's network has {plain['parameters']} parameters, the run's {info['parameters']}")
            row = {
                "seed": seed,
                "test_accuracy": info["test_metrics"]["test/accuracy"],
                "to_test_s": info["timing"]["process_to_test_s"],
                "to_fit_s": info["timing"]["process_to_fit_s"],
                "fit_s": info["fit_time_s"],
                "wall_s": round(wall, 3),
                "threads": info["threads"]["threads"],
                "plain_accuracy": plain["test_accuracy"],
                "plain_to_test_s": plain["process_to_test_s"],
            }
            row["ratio"] = row["to_test_s"] / row["plain_to_test_s"]
            per_seed.append(row)
            print(f"{name} seed {seed}: {json.dumps(row)}", flush=True)
        data[name] = per_seed
        accs = [r["test_accuracy"] for r in per_seed]
        times = [r["to_test_s"] for r in per_seed]
        ratio = statistics.median(r["ratio"] for r in per_seed)
        mean = statistics.mean(accs)
        figures += [
            {"name": f"{name}: test accuracy, mean of 5 seeds", "value": round(mean, 4), "unit": "", "note": f"min {min(accs):.4f}; goal >= {acc_goal} ({'met' if mean >= acc_goal else 'NOT met'})"},
            {"name": f"{name}: start to test metric, median", "value": round(statistics.median(times), 2), "unit": "s", "note": f"max {max(times):.2f} s; goal <= {time_goal:g} s ({'met' if statistics.median(times) <= time_goal else 'NOT met'})"},
            {"name": f"{name}: start to first step, median", "value": round(statistics.median(r["to_fit_s"] for r in per_seed), 2), "unit": "s", "note": "imports, data, model, thread choice, setup"},
            {"name": f"{name}: toolkit / plain script, median", "value": round(ratio, 3), "unit": "x", "note": f"plain script {statistics.median(r['plain_to_test_s'] for r in per_seed):.2f} s median, accuracy mean {statistics.mean(r['plain_accuracy'] for r in per_seed):.4f}; goal <= 1.1 ({'met' if ratio <= 1.1 else 'NOT met'})"},
        ]
        rows += [(name, r) for r in per_seed]
    table = "| recipe | seed | test acc | start to first step (s) | fit (s) | start to test (s) | whole `strata train` (s) | plain script acc | plain start to test (s) | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(
        f"| {n} | {r['seed']} | {r['test_accuracy']:.4f} | {r['to_fit_s']:.2f} | {r['fit_s']:.2f} | {r['to_test_s']:.2f} | {r['wall_s']:.2f} | {r['plain_accuracy']:.4f} | {r['plain_to_test_s']:.2f} | {r['ratio']:.2f} |"
        for n, r in rows
    )
    emit(
        "speedrun",
        ".venv/bin/python benchmarks/run_all.py --only speedrun",
        figures,
        table=table,
        description="Speedrun recipes over seeds 0-4: test accuracy and seconds from the start of `strata train` to the test metric "
        "(run.json timing.process_to_test_s; the whole command, report included, in its own column), beside the same network and "
        "training as a plain PyTorch script (benchmarks/_speedrun_plain.py) on the same clock and thread count. Quiet 2-core machine.",
        data={"runs": data},
    )


if __name__ == "__main__":
    main()
