"""FitNets on MNIST: a small CNN student distilled from the ResNet teacher with and without a hint.

Problem: does a hint on an intermediate feature map (Romero et al. 2015) add anything to
Hinton et al.'s soft targets for a small CNN on MNIST?
Idea:
- the teacher is `recipes/mnist_resnet.yaml`, seed 0, trained here; its middle stage (layer2,
  32 x 7 x 7) is the hint;
- the student is `recipes/mnist_student_cnn.yaml` (widths 8-16-32, 4 epochs), whose last stage
  (32 x 7 x 7) is the guided layer, through a learned 1x1 convolution; these are the
  defaults of `strata distill`;
- KD alone: T = 4, alpha = 0.9, fixed before any run (the values benchmarks/distillation.py
  chose on validation for the MLP student);
- KD + FitNets: the same T and alpha plus `hint_weight` chosen on the validation accuracy
  among 0.1 and 1, fixed before any run; one joint stage (the paper's two stages not run);
- the student trained alone (no teacher) runs beside the teacher, for reference.
One seed, 0, for every run (about 15 minutes of a shared 2-core machine). Test errors out of
MNIST's 10,000 official test images are reported for the record. Runs go two at a time on one
torch thread each.

    .venv/bin/python benchmarks/run_all.py --only distillation_fitnets
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

from deepstrata.run.run import Run  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
TEACHER = "recipes/mnist_resnet.yaml"
STUDENT = "recipes/mnist_student_cnn.yaml"
TEMPERATURE, ALPHA = 4.0, 0.9  # fixed before any run
HINT_WEIGHTS = (0.1, 1.0)  # chosen on validation
SEED = 0
TEST_SIZE = 10_000


def best_val_accuracy(run_dir: Path) -> float:
    """The monitored figure: the student recipes test their best validated epoch (trainer.monitor val/accuracy)."""
    return max(r["val/accuracy"] for r in Run.open(run_dir).history if "val/accuracy" in r)


def train(recipe: str, task: dict | None = None, threads: int = 1) -> dict:
    sets = [f"seed={SEED}", f"trainer.num_threads={threads}"] + (["task=" + json.dumps(task)] if task else [])
    metrics, run_dir, wall, cpu, load = run_recipe(recipe, *sets)
    acc = metrics["test/accuracy"]
    row = {"hint_weight": task and task.get("hint_weight"), "kd": task is not None, "test_errors": round((1 - acc) * TEST_SIZE),
           "val_accuracy": best_val_accuracy(run_dir), "wall_s": wall, "cpu_s": cpu, "load": load, "run_dir": str(run_dir)}
    print(f"{recipe} {task and {k: v for k, v in task.items() if k != 'teacher'}}: val {row['val_accuracy']:.4f}, {wall:.0f} s", file=sys.stderr, flush=True)
    return row


def main() -> None:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        teacher_job, alone_job = pool.submit(train, TEACHER), pool.submit(train, STUDENT)
        teacher = teacher_job.result()
        kd = {"name": "distillation", "teacher": teacher["run_dir"], "temperature": TEMPERATURE, "alpha": ALPHA}
        jobs = [pool.submit(train, STUDENT, kd)] + [pool.submit(train, STUDENT, {**kd, "hint_weight": w}) for w in HINT_WEIGHTS]
        kd_alone, *sweep = [j.result() for j in jobs]
        alone = alone_job.result()
    wall = time.perf_counter() - started
    chosen = max(sweep, key=lambda r: r["val_accuracy"])
    rows = ["| model | test errors of 10,000 (seed 0) | best val accuracy |", "|---|---|---|",
            f"| teacher: ResNet (`{TEACHER}`) | {teacher['test_errors']} | {teacher['val_accuracy']:.4f} |",
            f"| student alone (`{STUDENT}`) | {alone['test_errors']} | {alone['val_accuracy']:.4f} |",
            f"| student, KD (T={TEMPERATURE:g}, alpha={ALPHA}) | {kd_alone['test_errors']} | {kd_alone['val_accuracy']:.4f} |",
            f"| student, KD + FitNets (hint_weight={chosen['hint_weight']:g}, chosen on validation) | {chosen['test_errors']} | {chosen['val_accuracy']:.4f} |"]
    sweep_rows = ["| hint_weight (KD T=4, alpha=0.9, seed 0) | best val accuracy |", "|---|---|"] + [f"| {r['hint_weight']:g} | {r['val_accuracy']:.4f} |" for r in sweep]
    figures = [
        {"name": "teacher test errors", "value": teacher["test_errors"], "unit": "of 10,000", "note": "ResNet, seed 0"},
        {"name": "student alone test errors", "value": alone["test_errors"], "unit": "of 10,000", "note": "small CNN 8-16-32, seed 0"},
        {"name": "student KD test errors", "value": kd_alone["test_errors"], "unit": "of 10,000", "note": f"T={TEMPERATURE:g}, alpha={ALPHA}, fixed a priori"},
        {"name": "student KD + FitNets test errors", "value": chosen["test_errors"], "unit": "of 10,000",
         "note": f"hint_weight={chosen['hint_weight']:g} chosen on validation among {list(HINT_WEIGHTS)}; hint ResNet layer2 -> student stage 2 (32x7x7)"},
        {"name": "benchmark wall time", "value": round(wall), "unit": "s", "note": "two runs at a time, one torch thread each, on a shared 2-core machine"},
    ]
    emit("distillation_fitnets", ".venv/bin/python benchmarks/run_all.py --only distillation_fitnets", figures,
         table="\n".join(rows) + "\n\n" + "\n".join(sweep_rows),
         description="MNIST: FitNets hints (Romero et al. 2015) from the ResNet teacher's middle stage to a small CNN student's 7x7 stage, "
                     "against soft targets alone (Hinton et al. 2015) and the student alone; seed 0, one thread per run, two at a time.",
         data={"teacher": teacher, "alone": alone, "kd": kd_alone, "sweep": sweep})


if __name__ == "__main__":
    main()
