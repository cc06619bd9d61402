"""Foundations labs: scratch autodiff vs PyTorch, gradient-estimator variances, trainability,
optimizer landscapes, normalisation vs batch size, and classical baselines vs deep models.

Writes every lab's data (JSON) under benchmarks/results/labs/ and its figures under docs/img/,
which docs/foundations.md embeds; the last stdout line is the benchmark's JSON result.
Settings are reduced from the CLI defaults so the whole script fits a shared 2-core machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
IMG = REPO / "docs" / "img"
DATA = HERE / "results" / "labs"

from _common import emit  # noqa: E402


def md_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


def scratch_vs_torch(figures: list, tables: list) -> None:
    from deepstrata.labs.plots import loss_overlay
    from deepstrata.scratch.digits import train_scratch_and_torch

    t = time.time()
    s, p = train_scratch_and_torch(hidden=(64,), epochs=20, batch_size=32, lr=0.1, momentum=0.9)
    loss_overlay({s.name: s.losses, p.name: p.losses}, IMG / "foundations_scratch_vs_torch.png", title="digits MLP 64-64-10, same initial weights")
    diff = max(abs(a - b) for a, b in zip(s.losses, p.losses))
    figures += [
        {"name": "scratch MLP test accuracy (digits)", "value": round(s.test_accuracy, 4), "unit": "", "note": "64-64-10, SGD momentum 0.9, 20 epochs"},
        {"name": "PyTorch MLP test accuracy (same init)", "value": round(p.test_accuracy, 4), "unit": "", "note": ""},
        {"name": "max |loss difference| scratch vs PyTorch", "value": float(f"{diff:.3g}"), "unit": "", "note": "per-epoch training loss, float64"},
    ]
    tables.append("**Scratch autodiff vs PyTorch** (digits, %.0f s)\n\n" % (time.time() - t) + md_table(
        ["implementation", "test accuracy", "final train loss"], [[s.name, s.test_accuracy, s.losses[-1]], [p.name, p.test_accuracy, p.losses[-1]]]))


def estimators(figures: list, tables: list) -> None:
    from deepstrata.estimators.bandit import train_bandit
    from deepstrata.estimators.variance import CATEGORICAL_ESTIMATORS, GAUSSIAN_ESTIMATORS, categorical_linear, gaussian_quadratic
    from deepstrata.labs.plots import variance_bars

    rows, var = [], {"Gaussian, E[(z-3)^2]": {}, "categorical, E[r_k]": {}}
    for objective, fn, names in (("Gaussian, E[(z-3)^2]", gaussian_quadratic, GAUSSIAN_ESTIMATORS), ("categorical, E[r_k]", categorical_linear, CATEGORICAL_ESTIMATORS)):
        for name in names:
            st = fn(name)
            var[objective][name] = st.variance
            rows.append([objective, name, st.variance, float(st.z_scores().abs().max())])
    variance_bars(var, IMG / "foundations_estimator_variance.png")
    tables.append("**Gradient estimators** (8 samples per estimate, 4000 replicates; z-score = largest (mean - truth) / standard error in absolute value)\n\n"
                  + md_table(["objective", "estimator", "variance of one estimate", "max z-score"], rows))
    g = var["Gaussian, E[(z-3)^2]"]
    c = var["categorical, E[r_k]"]
    figures += [
        {"name": "REINFORCE variance reduction by baseline (Gaussian)", "value": round(g["reinforce"] / g["reinforce_baseline"], 2), "unit": "x", "note": "leave-one-out baseline"},
        {"name": "REINFORCE variance reduction by baseline (categorical, offset rewards)", "value": round(c["reinforce"] / c["reinforce_baseline"], 1), "unit": "x", "note": ""},
        {"name": "pathwise vs REINFORCE+baseline variance (Gaussian)", "value": round(g["reinforce_baseline"] / g["pathwise"], 1), "unit": "x lower", "note": ""},
    ]
    brows = []
    for baseline in (False, True):
        r = train_bandit([0.2, 0.5, 0.8, 0.6], steps=150, batch=16, lr=0.1, baseline=baseline)
        hit = next((i for i, p in enumerate(r.best_arm_prob) if p > 0.9), None)
        brows.append(["with baseline" if baseline else "no baseline", r.best_arm_prob[-1], hit])
    tables.append("**REINFORCE bandit** (arms 0.2/0.5/0.8/0.6, batches of 16 pulls, Adam lr 0.1)\n\n" + md_table(["policy gradient", "P(best arm) after 150 steps", "first step with P > 0.9"], brows))


def trainability(figures: list, tables: list) -> None:
    from deepstrata.labs.outputs import trainability_lab

    t = time.time()
    trainability_lab(DATA / "trainability", depths=(5, 20), activations=("sigmoid", "relu"), inits=("naive", "he"),
                     variants=("plain", "batch", "layer", "residual"), steps=200)
    cells = json.loads((DATA / "trainability" / "trainability.json").read_text())["cells"]
    for name in ("trainability_heatmap.png", "trainability_grad_norms.png"):
        (IMG / f"foundations_{name}").write_bytes((DATA / "trainability" / name).read_bytes())
        (DATA / "trainability" / name).unlink()  # the figure lives in docs/img; keep only the data here
    rows = [[c["depth"], c["activation"], c["init"], c["variant"], c["first_last_ratio"] if c["first_last_ratio"] is not None else "inf", c["test_accuracy"]] for c in cells]
    tables.append("**Trainability** (digits, width 64, 200 SGD+momentum steps, lr 0.05; ratio = ||grad W_1|| / ||grad W_last hidden|| at init; %.0f s)\n\n" % (time.time() - t)
                  + md_table(["depth", "activation", "init", "variant", "grad ratio first/last", "test accuracy"], rows))
    pick = {(c["depth"], c["activation"], c["init"], c["variant"]): c for c in cells}
    a, b = pick[(20, "sigmoid", "naive", "plain")], pick[(20, "sigmoid", "naive", "residual")]
    figures += [
        {"name": "depth-20 sigmoid+naive plain: first/last gradient ratio", "value": float(f"{a['first_last_ratio']:.3g}"), "unit": "", "note": "vanishing gradients"},
        {"name": "depth-20 sigmoid+naive: plain vs residual test accuracy", "value": f"{a['test_accuracy']:.3f} vs {b['test_accuracy']:.3f}", "unit": "", "note": ""},
    ]


def optimizers(figures: list, tables: list) -> None:
    from deepstrata.labs.outputs import optimizers_lab

    t = time.time()
    summary = optimizers_lab(DATA / "optimizers", optimizers=("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "lamb"),
                             surfaces=("quadratic", "rosenbrock", "saddle", "saddle_10d"), steps=500)
    for s in summary:
        (IMG / f"foundations_landscape_{s}.png").write_bytes((DATA / "optimizers" / f"landscape_{s}.png").read_bytes())
        (DATA / "optimizers" / f"landscape_{s}.png").unlink()
    rows = [[s, o, r["lr"], r["steps_to_target"] if r["steps_to_target"] is not None else "> 500", r["final_loss"]] for s, rs in summary.items() for o, r in rs.items()]
    tables.append("**Optimizer landscapes** (best learning rate of 1, 0.32, ..., 1e-4 per optimizer and surface; 500-step budget; %.0f s)\n\n" % (time.time() - t)
                  + md_table(["surface", "optimizer", "best lr", "steps to target", "final loss"], rows))
    q = summary["quadratic"]
    figures.append({"name": "steps to 1e-6 on quadratic (kappa=100): SGD vs momentum", "value": f"{q['sgd']['steps_to_target'] or '> 500'} vs {q['momentum']['steps_to_target'] or '> 500'}", "unit": "steps", "note": "each at its best grid LR"})


def normalization(figures: list, tables: list) -> None:
    from deepstrata.labs.outputs import normalization_lab

    t = time.time()
    cells = normalization_lab(DATA / "normalization", norms=("batch", "layer", "group", "none"), batch_sizes=(2, 8, 32, 128), steps=300)
    (IMG / "foundations_normalization.png").write_bytes((DATA / "normalization" / "normalization.png").read_bytes())
    (DATA / "normalization" / "normalization.png").unlink()
    rows = [[c["norm"], c["batch_size"], c["test_accuracy"], c["batch_stat_accuracy"], c["loss_roughness"]] for c in cells]
    tables.append("**Normalisation vs batch size** (small_cnn widths 8-16-32, 300 Adam steps at lr 2e-3 per cell; %.0f s)\n\n" % (time.time() - t)
                  + md_table(["norm", "batch size", "test accuracy (eval mode)", "accuracy with batch statistics", "loss roughness"], rows))
    by = {(c["norm"], c["batch_size"]): c for c in cells}
    figures.append({"name": "BatchNorm accuracy with batch statistics, batch 2 vs 128", "value": f"{by[('batch', 2)]['batch_stat_accuracy']:.3f} vs {by[('batch', 128)]['batch_stat_accuracy']:.3f}", "unit": "", "note": "LayerNorm/GroupNorm are batch-independent"})


TABULAR = {
    "iris": {"model": {"name": "mlp", "hidden": [64]}, "epochs": 100},
    "wine": {"model": {"name": "mlp", "hidden": [64]}, "epochs": 100},
    "breast_cancer": {"model": {"name": "mlp", "hidden": [64]}, "epochs": 60},
    "diabetes": {"model": {"name": "mlp", "hidden": [32], "num_classes": 1}, "epochs": 60},
    "digits": {"model": {"name": "mlp", "in_features": 64, "hidden": [128]}, "epochs": 30},
}


def baselines(figures: list, tables: list) -> None:
    import tempfile

    from deepstrata import api
    from deepstrata.baselines.classical import fit_baselines

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds, spec in TABULAR.items():
            recipe = {"name": f"{ds}_mlp", "seed": 0, "output_dir": tmp, "data": {"name": ds, "batch_size": 32}, "model": spec["model"],
                      "optimizer": {"name": "adamw", "lr": 0.01}, "trainer": {"max_epochs": spec["epochs"], "num_threads": 1, "progress": "off"}}
            start = time.perf_counter()
            deep = api.train(recipe)
            deep_time = time.perf_counter() - start
            results, split = fit_baselines(recipe)
            metric = results[0].metric
            deep_value = deep.metrics[f"test/{metric}"]
            best = max(results, key=lambda r: r.value) if metric == "accuracy" else min(results, key=lambda r: r.value)
            tol = 1 / split["test_size"] if metric == "accuracy" else 0.005 * deep_value
            diff = (best.value - deep_value) if metric == "accuracy" else (deep_value - best.value)
            verdict = "classical wins" if diff > tol else ("tie" if diff >= -tol else "deep wins")
            rows.append([ds, metric, deep_value, round(deep_time, 1)]
                        + [best.model, best.value, round(best.fit_time_s, 3), verdict, split["test_size"]])
            for r in results:
                figures.append({"name": f"{ds}: {r.model} test {metric}", "value": round(r.value, 4), "unit": "", "note": f"fit {r.fit_time_s:.2f}s"})
            figures.append({"name": f"{ds}: deep MLP test {metric}", "value": round(deep_value, 4), "unit": "", "note": f"train+test {deep_time:.1f}s"})
    tables.append("**Classical baselines vs a deep MLP on the same split** (deep time includes evaluation and report; baselines: default scikit-learn settings, 1 thread)\n\n"
                  + md_table(["dataset", "metric", "deep MLP", "deep time (s)", "best classical", "its score", "its fit time (s)", "verdict", "test size"], rows))


def main() -> None:
    import torch

    torch.set_num_threads(1)
    IMG.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    parts = sys.argv[1:] or ["scratch", "estimators", "optimizers", "normalization", "trainability", "baselines"]
    funcs = {"scratch": scratch_vs_torch, "estimators": estimators, "trainability": trainability, "optimizers": optimizers,
             "normalization": normalization, "baselines": baselines}
    figures: list = []
    tables: list = []
    for p in parts:
        t = time.time()
        funcs[p](figures, tables)
        print(f"{p}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    images = sorted(f"img/{path.name}" for path in IMG.glob("foundations_*.png"))
    emit("labs", ".venv/bin/python benchmarks/run_all.py --only labs", figures, table="\n\n".join(tables),
         description="Foundations labs (issue 8): scratch autodiff, estimators, trainability, landscapes, normalisation, classical baselines.",
         images=images)


if __name__ == "__main__":
    main()
