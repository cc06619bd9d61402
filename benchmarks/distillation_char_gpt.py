"""Distilling char-GPT: the same 2-layer student trained alone and on a 4-layer teacher's next-token distributions.

Problem: does a character GPT with half the layers reach fewer test bits per character when
it also matches a trained 4-layer GPT's per-token distributions (Hinton et al. 2015's soft
targets, applied at every position) than when it learns from the next character alone?
Idea:
- the teacher is `recipes/char_gpt.yaml` (4 layers, 128 wide, 500 steps), seed 0, trained here;
- the student is `recipes/char_gpt_half.yaml`: the same recipe with `model.depth: 2`;
- distilled: `task: {name: lm_distillation, teacher: ..., temperature: T, alpha: 0.5}`, with
  T chosen on the validation split's bits per character among 1 and 2, values fixed before any
  run (alpha is fixed at 0.5, not searched);
- the teacher and the sweep run at seed 0; the student alone and distilled at the chosen T
  run at seeds 0 and 1. Test bits per character (held-out files of the corpus) are reported
  for the record.
Every run trains for the recipe's 500 steps and tests its last weights. Runs go two at a time
on one torch thread each: the teacher beside the student alone, then the distilled runs.

    .venv/bin/python benchmarks/run_all.py --only distillation_char_gpt
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

from deepstrata.run.run import Run  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
TEACHER = "recipes/char_gpt.yaml"
STUDENT = "recipes/char_gpt_half.yaml"
SETTINGS = ((1.0, 0.5), (2.0, 0.5))  # (temperature, alpha), fixed before any run
SEEDS = (0, 1)
QUIET = ["trainer.num_threads=1", "callbacks=[]"]  # no text samples: they cost time and change no weight


def last_val_bpc(run_dir: Path) -> float:
    """val/bits_per_char of the last epoch: the weights the run tests (trainer.test_weights: last)."""
    return [r for r in Run.open(run_dir).history if "val/bits_per_char" in r][-1]["val/bits_per_char"]


def train(recipe: str, seed: int, task: dict | None = None) -> dict:
    sets = [f"seed={seed}", *QUIET] + (["task=" + json.dumps(task)] if task else [])
    metrics, run_dir, wall, cpu, load = run_recipe(recipe, *sets)
    row = {"seed": seed, "T": task and task["temperature"], "alpha": task and task["alpha"], "test_bpc": metrics["test/bits_per_char"],
           "val_bpc": last_val_bpc(run_dir), "bigram_bpc": metrics["test/bigram_bits_per_char"], "wall_s": wall, "cpu_s": cpu,
           "load": load, "run_dir": str(run_dir)}
    print(f"{recipe} seed {seed} {task and (task['temperature'], task['alpha'])}: val {row['val_bpc']:.4f}, {wall:.0f} s", file=sys.stderr, flush=True)
    return row


def main() -> None:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        teacher_job = pool.submit(train, TEACHER, 0)
        alone_jobs = [pool.submit(train, STUDENT, s) for s in SEEDS]
        teacher = teacher_job.result()
        spec = {"name": "lm_distillation", "teacher": str(Path(teacher["run_dir"]))}
        sweep = [j.result() for j in [pool.submit(train, STUDENT, 0, {**spec, "temperature": T, "alpha": a}) for T, a in SETTINGS]]
        chosen = min(sweep, key=lambda r: r["val_bpc"])
        more = [pool.submit(train, STUDENT, s, {**spec, "temperature": chosen["T"], "alpha": chosen["alpha"]}) for s in SEEDS if s != 0]
        alone = [j.result() for j in alone_jobs]
        distilled = [chosen] + [j.result() for j in more]
    wall = time.perf_counter() - started
    mean_alone = statistics.mean(r["test_bpc"] for r in alone)
    mean_distilled = statistics.mean(r["test_bpc"] for r in distilled)
    T, a = chosen["T"], chosen["alpha"]

    def cells(group: list[dict], key: str) -> str:
        return ", ".join(format(r[key], ".4f") for r in sorted(group, key=lambda r: r["seed"]))

    rows = ["| model | seeds | test bits/char (each seed) | mean | val bits/char (each seed) |", "|---|---|---|---|---|",
            f"| teacher: 4 layers (`{TEACHER}`) | 0 | {teacher['test_bpc']:.4f} | {teacher['test_bpc']:.4f} | {teacher['val_bpc']:.4f} |"]
    for name, group in ((f"student alone: 2 layers (`{STUDENT}`)", alone), (f"student distilled, T={T:g}, alpha={a:g}", distilled)):
        rows.append(f"| {name} | {', '.join(str(r['seed']) for r in sorted(group, key=lambda r: r['seed']))} | {cells(group, 'test_bpc')} | "
                    f"{statistics.mean(r['test_bpc'] for r in group):.4f} | {cells(group, 'val_bpc')} |")
    sweep_rows = ["| temperature, alpha (seed 0) | val bits/char |", "|---|---|"] + [f"| {r['T']:g}, {r['alpha']:g} | {r['val_bpc']:.4f} |" for r in sweep]
    sweep_rows.append(f"| student alone (seed 0), for reference | {min(alone, key=lambda r: r['seed'])['val_bpc']:.4f} |")
    figures = [
        {"name": "teacher test bits/char", "value": round(teacher["test_bpc"], 4), "unit": "bits/char", "note": f"4 layers, seed 0; bigram {teacher['bigram_bpc']:.4f}"},
        {"name": "student alone, mean test bits/char", "value": round(mean_alone, 4), "unit": "bits/char", "note": f"2 layers, seeds {SEEDS}"},
        {"name": "student distilled, mean test bits/char", "value": round(mean_distilled, 4), "unit": "bits/char",
         "note": f"T={T:g}, alpha={a:g} chosen on validation among {list(SETTINGS)}; seeds {SEEDS}"},
        {"name": "distilled - alone", "value": round(mean_distilled - mean_alone, 4), "unit": "bits/char", "note": "negative: distillation helps"},
        {"name": "benchmark wall time", "value": round(wall), "unit": "s", "note": "two runs at a time, one torch thread each, on a shared 2-core machine"},
    ]
    emit("distillation_char_gpt", ".venv/bin/python benchmarks/run_all.py --only distillation_char_gpt", figures,
         table="\n".join(rows) + "\n\n" + "\n".join(sweep_rows),
         description="char-GPT on python_text: a 4-layer teacher, a 2-layer student trained alone and distilled per token (lm_distillation); "
                     "(T, alpha) chosen on validation bits/char; 500 steps per run, one thread each, two at a time.",
         data={"teacher": teacher, "sweep": sweep, "alone": alone, "distilled": distilled})


if __name__ == "__main__":
    main()
