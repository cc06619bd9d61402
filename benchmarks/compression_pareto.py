"""Every compressed variant of the MNIST LeNet-5 on one Pareto plot: test accuracy, size on disk, latency.

Problem: each compression tool reports its own before/after; which variant to keep depends on
all of them measured the same way, side by side.
Idea: train `recipes/mnist_lenet.yaml` (seed 0), derive every variant the tools make (nothing
tuned here: the quantizers' defaults, and for the two pruners the fine-tuning settings their
own benchmarks chose on validation for this model: gradual pruning 4 epochs at 1x the recipe's
learning rate, channel pruning 4 epochs at 0.3x), chain two of them (channels pruned, then
int8), and run `strata pareto` on the trained run: test accuracy from each run's record, bytes of its model files, and the median
latency at batch 64 with every variant timed in turn on the run's one thread (its recipe pins it).

    .venv/bin/python benchmarks/run_all.py --only compression_pareto
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, STRATA, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
COMMAND = ".venv/bin/python benchmarks/run_all.py --only compression_pareto"
# (label, tool, arguments, applied to: None = the trained run, else the label of another variant)
VARIANTS = [
    ("pruned 90%, gradual", "prune", ["--sparsity", "0.9", "--schedule", "gradual", "--finetune-epochs", "4", "--finetune-lr-scale", "1.0"], None),
    ("channels -50% (L1)", "prune-channels", ["--fraction", "0.5", "--finetune-epochs", "4", "--finetune-lr-scale", "0.3"], None),
    ("int8 static (PT2E)", "quantize", ["--method", "static"], None),
    ("int8 dynamic (PT2E)", "quantize", ["--method", "dynamic"], None),
    ("int8 weight-only", "quantize", ["--method", "weight_only"], None),
    ("int8 QAT (PT2E)", "quantize", ["--method", "qat"], None),
    ("int8 ONNX Runtime", "quantize", ["--method", "ort"], None),
    ("channels -50%, then int8 static", "quantize", ["--method", "static"], "channels -50% (L1)"),
]


def strata(*args: str) -> dict:
    cmd = [STRATA, *args, "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the run's recipe pins one thread; every tool runs in it
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    metrics, root, wall, _, _ = run_recipe("recipes/mnist_lenet.yaml", "trainer.num_threads=1")
    print(f"trained: test {metrics['test/accuracy']:.4f} in {wall:.0f} s", file=sys.stderr, flush=True)
    made: dict[str, str] = {}
    for label, tool, args, source in VARIANTS:
        parent = made[source] if source else str(root)
        out = strata(tool, parent, *args)
        made[label] = out["run_dir"]
        print(f"{label}: {out['run_dir']} {out.get('metrics', {}).get('test/accuracy')}", file=sys.stderr, flush=True)

    result = strata("pareto", str(root), "--rounds", "30")
    threads = int(result["metrics"]["threads"])
    folder = sorted((root / "tools" / "pareto").glob("*/result.json"))[-1].parent  # the newest pareto result
    rows = json.loads((folder / "result.json").read_text())["tables"]["variants"]
    labels = {str(Path(p).resolve()): label for label, p in made.items()} | {str(root.resolve()): "trained (float32)"}
    image = REPO / "docs" / "img" / "compression_pareto.png"
    shutil.copyfile(folder / "pareto.png", image)

    base = rows[0]
    table = ["| # | variant | test accuracy | points lost | size on disk (bytes) | smaller | latency at batch 64 (ms) | faster | Pareto |", "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lost = 100 * (base["test/accuracy"] - r["test/accuracy"])
        table.append(
            f"| {i} | {labels.get(str(Path(r['run']).resolve()), r['variant'])} | {r['test/accuracy']:.4f} | {lost:+.2f} | {r['size_bytes']:,} | {r['size_ratio']:.2f}x | "
            f"{r['latency_ms']:.2f} | {r['speedup']:.2f}x | {'yes' if r['pareto'] else ''} |"
        )
    front = [labels.get(str(Path(r["run"]).resolve()), r["variant"]) for r in rows if r["pareto"]]
    best_size = max(rows[1:], key=lambda r: r["size_ratio"])
    best_speed = max(rows[1:], key=lambda r: r["speedup"])
    figures = [
        {"name": "variants on the Pareto front", "value": len(front), "unit": f"of {len(rows)}", "note": "; ".join(front)},
        {"name": "largest size reduction", "value": best_size["size_ratio"], "unit": "x", "note": f"{labels.get(str(Path(best_size['run']).resolve()))}, test accuracy {best_size['test/accuracy']:.4f}"},
        {"name": "largest speed-up at batch 64", "value": best_speed["speedup"], "unit": "x", "note": f"{labels.get(str(Path(best_speed['run']).resolve()))}, {threads} thread(s), median of 30 in turn"},
    ]
    emit(
        "compression_pareto",
        COMMAND,
        figures,
        table="\n".join(table),
        description=(
            "MNIST LeNet-5 (seed 0) and every variant the compression tools derive with their defaults; "
            f"strata pareto: test accuracy, bytes of model files, median latency at batch 64 on {threads} thread(s) (the recipe's), variants timed in turn."
        ),
        images=["img/compression_pareto.png"],
        data={"rows": rows},
    )


if __name__ == "__main__":
    main()
