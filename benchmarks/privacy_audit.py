"""Membership-inference audits of an overfit MNIST model and its DP-SGD counterpart.

Problem: the audit's goals (an overfit model leaks at AUC >= 0.6; its DP counterpart at
epsilon <= 3 stays within 0.52) are claims about trained models, so they need the models
trained and attacked by the shipped commands, not numbers copied from a session log.
Idea: train `recipes/mnist_overfit.yaml` and `recipes/mnist_overfit_dp.yaml` (one thread each,
side by side), then run `strata privacy-audit` on each twice: against the 1,000 held-out
images of the same 2,000 (`nonmembers=val`, loss threshold and offline LiRA with 4 shadows:
the recorded result), and against 1,000 of MNIST's official test images (loss threshold), the
comparison that shows what a differently distributed non-member set does.

    .venv/bin/python benchmarks/run_all.py --only privacy_audit
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, STRATA, run_recipe  # noqa: E402

RECIPES = ["recipes/mnist_overfit.yaml", "recipes/mnist_overfit_dp.yaml"]
ATTACKS = ["--set", "attacks=[loss_threshold,lira]", "--set", "shadows=4"]


def audit(run_dir: Path, *args: str) -> dict:
    cmd = [STRATA, "privacy-audit", str(run_dir), "--json", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]


def one(recipe: str) -> dict:
    metrics, run_dir, _, _, _ = run_recipe(recipe, "trainer.num_threads=1")
    held_out = audit(run_dir, "--set", "nonmembers=val", *ATTACKS)
    official = audit(run_dir)
    return {"recipe": Path(recipe).stem, "accuracy": metrics["test/accuracy"], "val": held_out, "test": official}


def main() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, RECIPES))
    rows = [
        "| run | epsilon | test accuracy | attack | AUC | TPR at 1% FPR | TPR at 0.1% FPR | advantage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    figures = []
    for r in results:
        eps = r["val"].get("audit/epsilon")
        shown = f"{eps:.3f}" if eps is not None else "none"
        for attack in ("loss_threshold", "lira"):
            m = {k.split("/")[-1]: v for k, v in r["val"].items() if k.startswith(f"audit/{attack}/")}
            rows.append(f"| {r['recipe']} | {shown} | {r['accuracy']:.4f} | {attack} | {m['auc']:.4f} | {m['tpr_at_fpr_0.01']:.4f} | "
                        f"{m['tpr_at_fpr_0.001']:.4f} | {m['advantage']:.4f} |")
        overfit = r["recipe"] == "mnist_overfit"
        for attack in ("loss_threshold", "lira"):
            auc = r["val"][f"audit/{attack}/auc"]
            # The held-out design (1,000 of the recipe's own 2,000 images as non-members) replaced
            # official-test non-members after test-based audits had been seen (docs/privacy.md):
            # a goal first met under it is not counted as reached.
            if overfit:
                note = f"goal >= 0.6 ({'met' if auc >= 0.6 else 'NOT met'}), seed 0"
            elif auc <= 0.52:
                note = f"goal <= 0.52: below it, but first below only after the redesign, so not counted as reached; epsilon {eps:.3f}, seed 0"
            else:
                note = f"goal <= 0.52 (NOT met); epsilon {eps:.3f}, seed 0"
            figures.append({"name": f"{r['recipe']}: {attack} AUC, 1,000 members vs 1,000 held-out", "value": round(auc, 4), "unit": "", "note": note})
        figures.append({"name": f"{r['recipe']}: loss_threshold AUC, 1,000 members vs 1,000 official test images",
                        "value": round(r["test"]["audit/loss_threshold/auc"], 4), "unit": "",
                        "note": "official test images are distributed differently from the training images; for comparison only"})
    emit(
        "privacy_audit",
        ".venv/bin/python benchmarks/run_all.py --only privacy_audit",
        figures,
        table="\n".join(rows),
        description="Membership inference (strata privacy-audit: loss threshold, Yeom et al. 2018; offline LiRA with 4 shadow models, "
                    "Carlini et al. 2022) on recipes/mnist_overfit.yaml (1,000 training images, no regularisation, 100 epochs) and "
                    "recipes/mnist_overfit_dp.yaml (the same data and network, DP-SGD at epsilon 3, delta 1e-5), seed 0; the table is "
                    "against the 1,000 held-out images of the same 2,000 (--set nonmembers=val).",
    )


if __name__ == "__main__":
    main()
