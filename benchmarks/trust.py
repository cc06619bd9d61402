"""Trust on MNIST and Fashion-MNIST: calibration before and after each recalibrator, and OOD detection.

Problem: "temperature scaling fixes overconfidence" and "the energy score detects OOD inputs"
are claims from papers on other models and data; the toolkit's own runs have to show them.
Idea: train the shipped LeNet-5 recipes and their overconfident variants as a user would
(`strata train`), then run the tools a user would: `strata calibration` (every recalibrator
fitted on the validation split, scored on the test split), `strata calibrate --method
temperature` (the derived run's before/after) and `strata ood` against Fashion-MNIST, MNIST,
Gaussian and uniform noise. Choices are made on validation; test numbers are reported.

    python benchmarks/trust.py                          # trains the four runs (~10 min on 2 cores)
    python benchmarks/trust.py --reuse mnist_lenet=runs/mnist_lenet/STAMP ...   # existing runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STRATA = str(Path(sys.executable).with_name("strata"))
CALIBRATION_RUNS = ["mnist_lenet_overconfident", "fashion_lenet_overconfident", "mnist_lenet", "fashion_lenet"]
OOD_PAIRS = [("mnist_lenet", "fashion_mnist"), ("mnist_lenet", "gaussian"), ("mnist_lenet", "uniform"), ("fashion_lenet", "mnist")]


def tool(*args: str) -> dict:
    """`strata <tool> ... --json`: the printed {"run_dir", "metrics"}."""
    proc = subprocess.run([STRATA, *args, "--json"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"strata {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reuse", nargs="*", default=[], help="recipe=RUN_DIR pairs of finished runs to use instead of training")
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.reuse)
    for recipe in CALIBRATION_RUNS:
        if recipe not in runs:
            print(f"training recipes/{recipe}.yaml", flush=True)
            _, run_dir, *_ = run_recipe(f"recipes/{recipe}.yaml", "trainer.num_threads=1")
            runs[recipe] = str(run_dir)

    figures, lines = [], []
    lines.append("**Calibration** (test split; every recalibrator fitted on the validation split; ECE with 15 equal-width bins)\n")
    lines.append("| run | method | accuracy | ECE | ECE (equal mass) | MCE | classwise ECE | NLL | Brier |\n|---|---|---|---|---|---|---|---|---|")
    for recipe in CALIBRATION_RUNS:
        m = tool("calibration", runs[recipe])["metrics"]
        methods = sorted({k.split("/")[1] for k in m if k.startswith("test/")}, key=lambda s: (s != "uncalibrated", s))
        for method in methods:
            g = {k: m[f"test/{method}/{k}"] for k in ("accuracy", "ece", "ece_mass", "mce", "classwise_ece", "nll", "brier")}
            lines.append(f"| {recipe} | {method} | {g['accuracy']:.4f} | {g['ece']:.4f} | {g['ece_mass']:.4f} | {g['mce']:.3f} | {g['classwise_ece']:.4f} | {g['nll']:.4f} | {g['brier']:.4f} |")
        c = tool("calibrate", runs[recipe], "--method", "temperature")["metrics"]
        ratio = c["test/ece_before"] / max(c["test/ece"], 1e-12)
        same = "unchanged" if c["test/accuracy"] == c["test/accuracy_before"] else f"changed {c['test/accuracy_before']:.4f} -> {c['test/accuracy']:.4f}"
        figures.append({"name": f"{recipe}: test ECE before / after temperature scaling", "value": ratio, "unit": "x", "note": f"ECE {c['test/ece_before']:.4f} -> {c['test/ece']:.4f}, NLL {c['test/nll_before']:.4f} -> {c['test/nll']:.4f}, T = {c['calibration/temperature']:.3f}, accuracy {same}"})

    lines.append("\n**Out-of-distribution detection** (in: the run's 10,000 test images; out: 10,000 images of the out-set; scorers fitted on the training split)\n")
    lines.append("| in | out | score | AUROC | AUPR-in | AUPR-out | FPR at 95% TPR |\n|---|---|---|---|---|---|---|")
    for recipe, out in OOD_PAIRS:
        m = tool("ood", runs[recipe], "--ood-data", out)["metrics"]
        scores = sorted({k.split("/")[1] for k in m if k.startswith("ood/")}, key=lambda s: (s != "msp", s))
        best = max(scores, key=lambda s: m[f"ood/{s}/auroc"])
        for s in scores:
            lines.append(f"| {recipe} | {out} | {s} | {m[f'ood/{s}/auroc']:.4f} | {m[f'ood/{s}/aupr_in']:.4f} | {m[f'ood/{s}/aupr_out']:.4f} | {m[f'ood/{s}/fpr95']:.4f} |")
        figures.append({"name": f"{recipe} vs {out}: best OOD AUROC", "value": m[f"ood/{best}/auroc"], "unit": "", "note": f"{best}; MSP {m['ood/msp/auroc']:.4f}"})

    reused = " ".join(f"{k}={v}" for k, v in runs.items()) if args.reuse else ""
    emit(
        "trust",
        "python benchmarks/trust.py" + (" --reuse RECIPE=RUN_DIR ... (runs each trained by: strata train recipes/RECIPE.yaml --set trainer.num_threads=1)" if reused else ""),
        figures,
        table="\n".join(lines),
        description="Calibration and OOD detection of LeNet-5 on MNIST and Fashion-MNIST: the shipped recipes and the overconfident variants (no label smoothing, no weight decay, 50 epochs at a constant learning rate, last weights).",
    )


if __name__ == "__main__":
    main()
