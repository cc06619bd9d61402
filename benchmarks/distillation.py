"""Knowledge distillation on MNIST: the same small student alone and distilled from a ResNet teacher.

Problem: does a 784-800-800-10 MLP make fewer test errors when trained on a teacher's soft
targets than on the labels alone? Hinton et al. 2015 (MNIST, their Table-free text): teacher
67 errors, the same-size student alone 146, distilled 74.
Idea:
- the teacher is `recipes/mnist_resnet.yaml`, seed 0;
- the student is `recipes/mnist_student_mlp.yaml`, trained alone and with
  `task: {name: distillation, teacher: ..., temperature: T, alpha: 0.9}`;
- the temperature is chosen on the validation split (T in 2, 4, 8, seed 0);
- student alone and distilled at the chosen T then run over seeds 0, 1, 2, and the test
  errors out of 10,000 are reported for the record.

Runs go two at a time on one torch thread each.

    .venv/bin/python benchmarks/run_all.py --only distillation
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

from deepstrata.run.run import Run  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
TEACHER = "recipes/mnist_resnet.yaml"
STUDENT = "recipes/mnist_student_mlp.yaml"
TEMPERATURES = (2.0, 4.0, 8.0)
ALPHA = 0.9
SEEDS = (0, 1, 2)
TEST_SIZE = 10_000


def best_val_accuracy(run_dir: Path) -> float:
    return max(r["val/accuracy"] for r in Run.open(run_dir).history if "val/accuracy" in r)


def student(seed: int, teacher: Path | None, temperature: float | None) -> dict:
    sets = [f"seed={seed}", "trainer.num_threads=1"]
    if teacher is not None:
        sets.append("task=" + json.dumps({"name": "distillation", "teacher": str(teacher), "temperature": temperature, "alpha": ALPHA}))
    metrics, run_dir, wall, _, _ = run_recipe(STUDENT, *sets)
    acc = metrics["test/accuracy"]
    return {"seed": seed, "T": temperature, "test_accuracy": acc, "test_errors": round((1 - acc) * TEST_SIZE), "val_accuracy": best_val_accuracy(run_dir), "wall_s": wall, "run_dir": str(run_dir)}


def main() -> None:
    print("training the teacher", file=sys.stderr, flush=True)
    t_metrics, teacher_dir, t_wall, _, _ = run_recipe(TEACHER, "trainer.num_threads=2")
    teacher_errors = round((1 - t_metrics["test/accuracy"]) * TEST_SIZE)
    print(f"teacher: {teacher_errors} errors, {t_wall:.0f} s", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sweep = list(pool.map(lambda T: student(0, teacher_dir, T), TEMPERATURES))
        chosen = max(sweep, key=lambda r: r["val_accuracy"])
        T = chosen["T"]
        print("sweep", [(r["T"], r["val_accuracy"]) for r in sweep], "chosen", T, file=sys.stderr, flush=True)
        jobs = [pool.submit(student, s, None, None) for s in SEEDS] + [pool.submit(student, s, teacher_dir, T) for s in SEEDS if s != 0]
        results = [j.result() for j in jobs]
    alone = [r for r in results if r["T"] is None]
    distilled = [chosen] + [r for r in results if r["T"] is not None]
    mean_alone = statistics.mean(r["test_errors"] for r in alone)
    mean_distilled = statistics.mean(r["test_errors"] for r in distilled)
    reduction = 1 - mean_distilled / mean_alone
    rows = ["| model | seeds | test errors of 10,000 (each seed) | mean | best val accuracy (each seed) |", "|---|---|---|---|---|"]
    rows.append(f"| teacher: ResNet (`{TEACHER}`) | 0 | {teacher_errors} | {teacher_errors} | |")
    for name, group in (("student alone (`" + STUDENT + "`)", alone), (f"student distilled, T={T:g}, alpha={ALPHA}", distilled)):
        group = sorted(group, key=lambda r: r["seed"])
        rows.append(f"| {name} | {', '.join(str(r['seed']) for r in group)} | {', '.join(str(r['test_errors']) for r in group)} | "
                    f"{statistics.mean(r['test_errors'] for r in group):.1f} | {', '.join(format(r['val_accuracy'], '.4f') for r in group)} |")
    sweep_rows = ["| temperature (alpha 0.9, seed 0) | best val accuracy |", "|---|---|"] + [f"| {r['T']:g} | {r['val_accuracy']:.4f} |" for r in sweep]
    figures = [
        {"name": "teacher test errors", "value": teacher_errors, "unit": "of 10,000", "note": f"Hinton et al. 2015: 67; {t_wall:.0f} s"},
        {"name": "student alone, mean test errors", "value": round(mean_alone, 1), "unit": "of 10,000", "note": f"seeds {SEEDS}; Hinton et al.: 146"},
        {"name": "student distilled, mean test errors", "value": round(mean_distilled, 1), "unit": "of 10,000", "note": f"T={T:g} chosen on validation, alpha {ALPHA}; Hinton et al.: 74"},
        {"name": "distilled / alone: fewer errors", "value": round(100 * reduction, 1), "unit": "%", "note": "goal >= 20% on the mean over seeds"},
    ]
    emit("distillation", ".venv/bin/python benchmarks/run_all.py --only distillation", figures,
         table="\n".join(rows) + "\n\n" + "\n".join(sweep_rows),
         description="MNIST: a ResNet teacher, a 784-800-800-10 MLP student trained alone and distilled (Hinton et al. 2015); the temperature chosen on validation; 10 epochs per student, one thread each, two at a time.",
         data={"sweep": sweep, "results": results, "teacher_errors": teacher_errors})


if __name__ == "__main__":
    main()
