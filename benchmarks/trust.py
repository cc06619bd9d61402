"""Trust on MNIST and Fashion-MNIST: calibration before and after each recalibrator, and OOD detection.

Problem: "temperature scaling fixes overconfidence" and "the energy score detects OOD inputs"
are claims from papers on other models and data; the toolkit's own runs have to show them.
Idea: train the shipped LeNet-5 recipes and their overconfident variants as a user would
(`strata train`), then run the tools a user would: `strata calibration` (every recalibrator
fitted on the validation split, scored on the test split), `strata calibrate --method
temperature` (the derived run's before/after), `strata ood` against Fashion-MNIST, MNIST,
Gaussian and uniform noise, `strata uncertainty` with a 5-seed ensemble, and `strata attack`
on the standard and the adversarially trained MNIST models. Choices are made on validation; test numbers are reported.

    python benchmarks/trust.py                          # trains the runs (~90 min on 2 cores)
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
OVERCONFIDENT_SEEDS = [1]  # a second seed of each overconfident recipe: temperature scaling's ratio, seed to seed
ENSEMBLE_SEEDS = [1, 2, 3, 4]  # with fashion_lenet's seed 0: five members
DROPOUT = "fashion_lenet+model.dropout=0.2"  # the same recipe with dropout before each hidden layer, for MC dropout
OOD_PAIRS = [("mnist_lenet", "fashion_mnist"), ("mnist_lenet", "gaussian"), ("mnist_lenet", "uniform"), ("fashion_lenet", "mnist")]
RUNS = [
    *CALIBRATION_RUNS,
    *(f"{r}@{s}" for r in CALIBRATION_RUNS[:2] for s in OVERCONFIDENT_SEEDS),
    "mnist_adversarial",
    *(f"fashion_lenet@{s}" for s in ENSEMBLE_SEEDS),
    DROPOUT,
]


def train(key: str) -> str:
    """`recipe[@seed][+key=value]`: trained with `strata train` on one thread; returns the run dir."""
    recipe, _, setting = key.partition("+")
    name, _, seed = recipe.partition("@")
    sets = ["trainer.num_threads=1", *([f"seed={seed}"] if seed else []), *([setting] if setting else [])]
    print(f"training recipes/{name}.yaml {' '.join(sets)}", flush=True)
    _, run_dir, *_ = run_recipe(f"recipes/{name}.yaml", *sets)
    return str(run_dir)


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
    runs = dict(item.rsplit("=", 1) for item in args.reuse)  # a key may hold "=" (+model.dropout=0.2), a run dir does not
    for key in RUNS:
        if key not in runs:
            runs[key] = train(key)

    figures, lines = [], []
    lines.append("**Calibration** (test split; every recalibrator fitted on the validation split; ECE with 15 equal-width bins)\n")
    lines.append("| run | method | accuracy | ECE | ECE (equal mass) | MCE | classwise ECE | NLL | Brier |\n|---|---|---|---|---|---|---|---|---|")
    for recipe in CALIBRATION_RUNS:
        m = tool("calibration", runs[recipe])["metrics"]
        methods = sorted({k.split("/")[1] for k in m if k.startswith("test/")}, key=lambda s: (s != "uncalibrated", s))
        for method in methods:
            g = {k: m[f"test/{method}/{k}"] for k in ("accuracy", "ece", "ece_mass", "mce", "classwise_ece", "nll", "brier")}
            lines.append(f"| {recipe} | {method} | {g['accuracy']:.4f} | {g['ece']:.4f} | {g['ece_mass']:.4f} | {g['mce']:.3f} | {g['classwise_ece']:.4f} | {g['nll']:.4f} | {g['brier']:.4f} |")
    lines.append("\n**Temperature scaling, seed by seed** (`strata calibrate RUN --method temperature`; T fitted on the validation split, so its validation ECE is in-sample)\n")
    lines.append("| run | seed | T | test ECE before | test ECE after | test ratio | val ratio | test NLL before | after | accuracy |\n|---|---|---|---|---|---|---|---|---|---|")
    for recipe in CALIBRATION_RUNS:
        seeded = [(0, runs[recipe])] + [(s, runs[f"{recipe}@{s}"]) for s in OVERCONFIDENT_SEEDS if f"{recipe}@{s}" in runs]
        ratios = []
        for seed, run_dir in seeded:
            c = tool("calibrate", run_dir, "--method", "temperature")["metrics"]
            ratio, val_ratio = c["test/ece_before"] / max(c["test/ece"], 1e-12), c["val/ece_before"] / max(c["val/ece"], 1e-12)
            ratios.append(ratio)
            same = "unchanged" if c["test/accuracy"] == c["test/accuracy_before"] else f"{c['test/accuracy_before']:.4f} -> {c['test/accuracy']:.4f}"
            lines.append(f"| {recipe} | {seed} | {c['calibration/temperature']:.3f} | {c['test/ece_before']:.4f} | {c['test/ece']:.4f} | {ratio:.1f}x | {val_ratio:.1f}x | {c['test/nll_before']:.4f} | {c['test/nll']:.4f} | {same} |")
            if seed == 0:
                note = f"ECE {c['test/ece_before']:.4f} -> {c['test/ece']:.4f}, NLL {c['test/nll_before']:.4f} -> {c['test/nll']:.4f}, T = {c['calibration/temperature']:.3f}, accuracy {same}"
        if len(ratios) > 1:
            note += f"; seeds {', '.join(str(s) for s, _ in seeded)}: " + ", ".join(f"{r:.1f}x" for r in ratios)
        figures.append({"name": f"{recipe}: test ECE before / after temperature scaling", "value": ratios[0], "unit": "x", "note": note})

    lines.append("\n**Out-of-distribution detection** (in: the run's 10,000 test images; out: 10,000 images of the out-set; scorers fitted on the training split)\n")
    lines.append("| in | out | score | AUROC | AUPR-in | AUPR-out | FPR at 95% TPR |\n|---|---|---|---|---|---|---|")
    for recipe, out in OOD_PAIRS:
        m = tool("ood", runs[recipe], "--ood-data", out)["metrics"]
        scores = sorted({k.split("/")[1] for k in m if k.startswith("ood/")}, key=lambda s: (s != "msp", s))
        best = max(scores, key=lambda s: m[f"ood/{s}/auroc"])
        for s in scores:
            lines.append(f"| {recipe} | {out} | {s} | {m[f'ood/{s}/auroc']:.4f} | {m[f'ood/{s}/aupr_in']:.4f} | {m[f'ood/{s}/aupr_out']:.4f} | {m[f'ood/{s}/fpr95']:.4f} |")
        figures.append({"name": f"{recipe} vs {out}: best OOD AUROC", "value": m[f"ood/{best}/auroc"], "unit": "", "note": f"{best}; MSP {m['ood/msp/auroc']:.4f}"})

    lines.append("\n**Uncertainty** (Fashion-MNIST test split; fashion_lenet seeds 0-4, each 10 epochs; `strata uncertainty SEED0 --members SEED1,...,SEED4`; the dropout rows: the recipe with `--set model.dropout=0.2`, `strata uncertainty RUN --methods softmax,mc_dropout,laplace`, 20 passes)\n")
    lines.append("| method | accuracy | NLL | ECE | Brier | AURC | error at 90% coverage | error at 100% |\n|---|---|---|---|---|---|---|---|")
    members = [runs[f"fashion_lenet@{s}"] for s in ENSEMBLE_SEEDS]
    m = tool("uncertainty", runs["fashion_lenet"], "--members", ",".join(members))["metrics"]
    for method in sorted({k.split("/")[1] for k in m}, key=lambda s: (s != "softmax", s)):
        g = {k: m[f"test/{method}/{k}"] for k in ("accuracy", "nll", "ece", "brier", "aurc", "error_at_90", "error")}
        lines.append(f"| {method} | {g['accuracy']:.4f} | {g['nll']:.4f} | {g['ece']:.4f} | {g['brier']:.4f} | {g['aurc']:.4f} | {g['error_at_90']:.4f} | {g['error']:.4f} |")
    d = tool("uncertainty", runs[DROPOUT], "--methods", "softmax,mc_dropout,laplace")["metrics"]
    for method in ("softmax", "mc_dropout", "laplace"):
        g = {k: d[f"test/{method}/{k}"] for k in ("accuracy", "nll", "ece", "brier", "aurc", "error_at_90", "error")}
        lines.append(f"| dropout 0.2 model: {method} | {g['accuracy']:.4f} | {g['nll']:.4f} | {g['ece']:.4f} | {g['brier']:.4f} | {g['aurc']:.4f} | {g['error_at_90']:.4f} | {g['error']:.4f} |")
    single = [m["test/softmax/nll"]] + [tool("uncertainty", r, "--methods", "softmax")["metrics"]["test/softmax/nll"] for r in members]
    mean_single = sum(single) / len(single)
    figures.append({"name": "5-member ensemble test NLL below the members' mean", "value": 1 - m["test/ensemble/nll"] / mean_single, "unit": "", "note": f"ensemble {m['test/ensemble/nll']:.4f}; members {', '.join(f'{v:.4f}' for v in single)}; goal >= 0.10"})
    figures.append({"name": "ensemble error at 90% coverage / at 100%", "value": m["test/ensemble/error_at_90"] / m["test/ensemble/error"], "unit": "", "note": f"{m['test/ensemble/error_at_90']:.4f} / {m['test/ensemble/error']:.4f}; goal <= 0.5"})

    lines.append("\n**Adversarial robustness** (MNIST, L-infinity, eps in raw pixel units; first 1,000 test images; margin loss; PGD counts an example broken once any iterate fools the model)\n")
    lines.append("| run | attack | clean | eps 0.1 | eps 0.2 | eps 0.3 | eps 0.5 |\n|---|---|---|---|---|---|---|")
    attacks = [
        ("mnist_lenet", "PGD-40", ["--attack", "pgd", "--eps", "0.1,0.2,0.3,0.5", "--steps", "40"]),
        ("mnist_adversarial", "PGD-50, 5 restarts", ["--attack", "pgd", "--eps", "0.1,0.2,0.3,0.5", "--steps", "50", "--restarts", "5"]),
        ("mnist_adversarial", "PGD-100, 10 restarts", ["--attack", "pgd", "--eps", "0.3", "--steps", "100", "--restarts", "10"]),
        ("mnist_adversarial", "Square, 5,000 queries", ["--attack", "square", "--eps", "0.3", "--queries", "5000"]),
    ]
    at_03 = {}
    for recipe, label, cli in attacks:
        m = tool("attack", runs[recipe], *cli, "--limit", "1000")["metrics"]
        cells = [f"{m[f'test/robust_accuracy/eps={e}']:.3f}" if f"test/robust_accuracy/eps={e}" in m else "" for e in ("0.1", "0.2", "0.3", "0.5")]
        lines.append(f"| {recipe} | {label} | {m['test/clean_accuracy']:.3f} | " + " | ".join(cells) + " |")
        at_03[(recipe, label)] = m["test/robust_accuracy/eps=0.3"]
        figures.append({"name": f"{recipe}: robust accuracy at eps 0.3, {label}", "value": m["test/robust_accuracy/eps=0.3"], "unit": "", "note": f"clean {m['test/clean_accuracy']:.3f}"})
    square = at_03[("mnist_adversarial", "Square, 5,000 queries")]
    for label in ("PGD-50, 5 restarts", "PGD-100, 10 restarts"):
        gap = at_03[("mnist_adversarial", label)] - square
        figures.append({"name": f"mnist_adversarial: {label} minus Square at eps 0.3 (points)", "value": round(100 * gap, 1), "unit": "points", "note": "goal: Square does not beat PGD by more than 2 points (no gradient masking)"})

    reused = " ".join(f"{k}={v}" for k, v in runs.items()) if args.reuse else ""
    emit(
        "trust",
        "python benchmarks/trust.py" + (" --reuse RECIPE[@SEED][+KEY=VALUE]=RUN_DIR ... (each run trained by: strata train recipes/RECIPE.yaml --set trainer.num_threads=1 [--set seed=SEED] [--set KEY=VALUE])" if reused else ""),
        figures,
        table="\n".join(lines),
        description="Calibration, uncertainty, OOD detection and adversarial robustness of LeNet-5 on MNIST and Fashion-MNIST: the shipped recipes, the overconfident variants (no label smoothing, no weight decay, 50 epochs at a constant learning rate, last weights) over two seeds, a 5-seed ensemble, a dropout variant for MC dropout, and the adversarially trained MNIST model.",
    )


if __name__ == "__main__":
    main()
