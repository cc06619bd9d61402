"""Vision backbones against scikit-learn baselines: accuracy and the wall time to reach the floor.

Problem: "ResNet reaches 99%" says nothing about cost, and a deep network that needs minutes to
match an SVC trained in a second is a bad trade on small data.
Idea: train each backbone's recipe (recipes/{digits,mnist}_*.yaml) and, after every epoch,
score the held-out test split *only to time the crossing* (it never feeds back into training,
and the scoring time is not counted); report the training wall time at which each accuracy
floor of issue 6 is first reached, next to logistic regression, an RBF SVC and scikit-learn's
MLPClassifier fitted on the same training split and timed in the same run.

    .venv/bin/python benchmarks/vision_time_to_accuracy.py          # digits (about 2 minutes)
    .venv/bin/python benchmarks/vision_time_to_accuracy_mnist.py    # MNIST (about 30 minutes)
    VISION_BENCH_THREADS=2 ...   # torch/BLAS threads (default 1: stable on a shared machine)
    VISION_BENCH_MODELS=ResNet,CapsNet ...   # re-run only these; the other rows are kept from the stored result

The two parts are separate benchmarks (separate result files) because their costs differ by
an order of magnitude; both use the code here.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from deepstrata.training.callbacks.base import Callback  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# MNIST is read from $DEEPSTRATA_DATA/mnist; like the tests, default to the repository's ../shared/data.
os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
THREADS = int(os.environ.get("VISION_BENCH_THREADS", "1"))
ONLY = [m for m in os.environ.get("VISION_BENCH_MODELS", "").split(",") if m]

# (dataset, backbone, recipe, accuracy floor from issue 6)
BACKBONES = {
    "digits": [
        ("digits", "MLP", "recipes/digits_mlp.yaml", 0.965),
        ("digits", "CNN", "recipes/digits_cnn.yaml", 0.990),
        ("digits", "ResNet", "recipes/digits_resnet.yaml", 0.990),
        ("digits", "ViT", "recipes/digits_vit.yaml", 0.960),
        ("digits", "CapsNet", "recipes/digits_capsnet.yaml", 0.980),
    ],
    "mnist": [
        ("mnist", "LeNet-5", "recipes/mnist_lenet.yaml", 0.991),
        ("mnist", "ResNet", "recipes/mnist_resnet.yaml", 0.995),
        ("mnist", "ViT", "recipes/mnist_vit.yaml", 0.980),
        ("mnist", "CapsNet", "recipes/mnist_capsnet.yaml", 0.992),
    ],
}


class TimeToAccuracy(Callback):
    """Callback: training time per epoch (hooks around the epoch) and test accuracy after it."""

    def __init__(self, test_x, test_y, floor: float):
        self.test_x, self.test_y, self.floor = test_x, test_y, floor
        self.train_s = 0.0
        self.curve: list[tuple[int, float, float]] = []  # (epoch, training seconds so far, test accuracy)
        self.reached_s: float | None = None

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any) -> None:
        import torch

        self.train_s += time.perf_counter() - self._t0
        model = trainer.task.model
        was = model.training
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(self.test_x), 1000):
                x = self.test_x[i : i + 1000].to(trainer.device)
                correct += int((model(x).argmax(1).cpu() == self.test_y[i : i + 1000]).sum())
        model.train(was)
        acc = correct / len(self.test_y)
        self.curve.append((trainer.state.epoch + 1, self.train_s, acc))
        if self.reached_s is None and acc >= self.floor:
            self.reached_s = self.train_s
        print(f"  epoch {self.curve[-1][0]}: {self.train_s:.1f} s, test accuracy {acc:.4f}", flush=True)


@functools.lru_cache(maxsize=None)
def test_arrays(dataset: str):
    """The held-out test split (official MNIST test set; stratified 20% of digits, seed 0), built once per run."""
    import torch

    from deepstrata.data.base import build_data

    bundle = build_data(dataset, seed=0, val_fraction=0.1, test_fraction=0.2)
    xs, ys = zip(*[bundle.test[i] for i in range(len(bundle.test))])
    return bundle, torch.stack(xs), torch.stack(ys)


def run_backbone(dataset: str, name: str, recipe: str, floor: float, out: str) -> dict[str, Any]:
    from deepstrata.api import train

    _, tx, ty = test_arrays(dataset)
    cb = TimeToAccuracy(tx, ty, floor)
    print(f"{dataset} {name} ({recipe})", flush=True)
    result = train(
        REPO / recipe, [f"output_dir={out}", "trainer.progress=off", f"trainer.num_threads={THREADS}"], extra_callbacks=[cb]
    )
    return {
        "dataset": dataset, "model": name, "floor": floor, "accuracy": result.metrics["test/accuracy"],
        "train_s": cb.train_s, "reached_s": cb.reached_s, "epochs": len(cb.curve), "curve": cb.curve, "threads": THREADS,
    }  # fmt: skip


def run_sklearn(dataset: str) -> list[dict[str, Any]]:
    """Logistic regression, RBF SVC, MLPClassifier on the same training split (validation part unused)."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    bundle, tx, ty = test_arrays(dataset)
    xs, ys = zip(*[bundle.train[i] for i in range(len(bundle.train))])
    x_train = np.stack([x.numpy().ravel() for x in xs])
    y_train = np.array([int(y) for y in ys])
    x_test, y_test = tx.flatten(1).numpy(), ty.numpy()
    if dataset == "digits":
        models = {
            "logistic regression": (LogisticRegression(max_iter=2000, C=1.0), None),
            "SVC (RBF)": (SVC(kernel="rbf", C=10.0, gamma="scale"), None),
            "MLPClassifier": (MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=200, random_state=0), None),
        }
    else:  # MNIST: a kernel SVC on all 54,000 images costs tens of minutes on one core; it fits 10,000.
        models = {
            "logistic regression": (LogisticRegression(max_iter=300, C=1.0), None),
            "SVC (RBF), first 10,000 training images": (SVC(kernel="rbf", C=10.0, gamma="scale"), 10_000),
            "MLPClassifier (20 epochs)": (MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=20, random_state=0), None),
        }
    rows = []
    for name, (est, limit) in models.items():
        with threadpool_limits(THREADS), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # capped iterations are the point: time is the budget
            t0 = time.perf_counter()
            est.fit(x_train[:limit], y_train[:limit])
            fit_s = time.perf_counter() - t0
        acc = float((est.predict(x_test) == y_test).mean())
        print(f"{dataset} {name}: test accuracy {acc:.4f}, fit {fit_s:.1f} s", flush=True)
        rows.append({"dataset": dataset, "model": f"{name} (scikit-learn)", "floor": None, "accuracy": acc, "train_s": fit_s, "reached_s": None, "epochs": None, "threads": THREADS})
    return rows


def main(part: str = "digits") -> None:
    import torch

    torch.set_num_threads(THREADS)
    import json

    name = "vision_time_to_accuracy" + ("" if part == "digits" else f"_{part}")
    known = [spec[1] for spec in BACKBONES[part]]
    if set(ONLY) - set(known):
        raise SystemExit(f"VISION_BENCH_MODELS: unknown {sorted(set(ONLY) - set(known))}; choose from {', '.join(known)}")
    stored_rows: dict[str, dict[str, Any]] = {}
    if ONLY:
        stored = REPO / "benchmarks" / "results" / f"{name}.json"
        if not stored.is_file():
            raise SystemExit(f"VISION_BENCH_MODELS needs a stored full run in {stored}; run without it first")
        stored_rows = {r["model"]: r for r in json.loads(stored.read_text()).get("data", {}).get("rows", [])}
        if set(known) - set(ONLY) - set(stored_rows):
            raise SystemExit(f"{stored} lacks rows for {sorted(set(known) - set(ONLY) - set(stored_rows))}; run without VISION_BENCH_MODELS")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        if ONLY:
            rows += [r for r in stored_rows.values() if r["floor"] is None]  # scikit-learn baselines
        else:
            rows += run_sklearn(part)
        for spec in BACKBONES[part]:
            rows.append(run_backbone(*spec, out=out) if not ONLY or spec[1] in ONLY else stored_rows[spec[1]])
    load = os.getloadavg()[0]
    figures, lines = [], ["| data | model | test accuracy | floor | training time to floor (s) | total training time (s) | epochs | threads |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        floor = "" if r["floor"] is None else f"{r['floor']:.3f}"
        reached = "" if r["floor"] is None else ("not reached" if r["reached_s"] is None else f"{r['reached_s']:.1f}")
        lines.append(f"| {r['dataset']} | {r['model']} | {r['accuracy']:.4f} | {floor} | {reached} | {r['train_s']:.1f} | {r['epochs'] or ''} | {r.get('threads', 1)} |")
        note = "fit time" if r["floor"] is None else f"floor {r['floor']:.3f}; time to floor {reached} s; {r['epochs']} epochs"
        note += f"; {r.get('threads', 1)} thread(s)"
        figures.append({"name": f"{r['dataset']} {r['model']} test/accuracy", "value": r["accuracy"], "unit": "", "note": note})
        figures.append({"name": f"{r['dataset']} {r['model']} training time", "value": round(r["train_s"], 2), "unit": "s", "note": "scorings of the test split excluded"})
    env = (f"VISION_BENCH_THREADS={THREADS} " if THREADS != 1 else "") + (f"VISION_BENCH_MODELS={','.join(ONLY)} " if ONLY else "")
    rerun = f" Re-measured in this run: {', '.join(ONLY)}; the other rows are kept from the stored result (an earlier run, full or of other VISION_BENCH_MODELS)." if ONLY else ""
    emit(
        name,
        f"{env}.venv/bin/python benchmarks/run_all.py --only {name}",
        figures,
        table="\n".join(lines),
        description=(
            "Backbones of issue 6 trained by their recipes (seed 0) next to scikit-learn baselines on the same split, "
            f"with the torch/BLAS threads given per row; 1-minute load average at the end {load:.1f} (the machine is shared). "
            "Time to floor = training time (validation and test scoring excluded) until the test accuracy after an epoch first reaches the floor."
            + rerun
        ),
        data={"rows": rows},
    )


if __name__ == "__main__":
    main()
