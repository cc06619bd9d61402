"""BERT pretraining and fine-tuning on the standard library's text (recipes/text_bert_*.yaml).

Problem: "pretraining helps" is a claim about a comparison: the same architecture, the same
few labels, with and without the pretrained encoder, and with 10% of the labels one run of
each is too noisy to settle it.
Idea: run the masked-LM pretraining recipe once (whole identifiers, 40% of the tokens;
masked-token accuracy vs always guessing the most frequent token), then fine-tune on 10% of the labels of the package-of-a-function task
from the pretrained encoder and from scratch, paired over 3 seeds (each seed draws its own
labelled subset, initialisation and order, the same for both arms), and report every run and
the means. Both arms use the pretraining run's tokenizer and the same recipe; only
`model.init_from` differs.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402

SEEDS = (0, 1, 2)


def last_val_accuracy(run_dir: Path) -> float:
    """val/accuracy after the last epoch (the weights that are tested), from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["val/accuracy"] for r in rows if "val/accuracy" in r][-1]


def main() -> None:
    pre, pre_dir, pre_wall, pre_cpu, pre_load = run_recipe("recipes/text_bert_pretrain.yaml")
    print(f"pretrain: {pre} ({pre_wall:.0f} s wall, {pre_cpu:.0f} s CPU)", flush=True)
    runs: dict[str, list[tuple[dict, float, float]]] = {"pretrained": [], "scratch": []}
    for seed in SEEDS:
        for arm, init in (("pretrained", str(pre_dir)), ("scratch", "null")):
            m, run_dir, wall, cpu, _ = run_recipe(
                "recipes/text_bert_finetune.yaml",
                f"seed={seed}", f"data.label_seed={seed}", f"data.tokenizer_run={pre_dir}", f"model.init_from={init}",
            )
            m = {**m, "val/accuracy": last_val_accuracy(run_dir)}
            print(f"seed {seed} {arm}: {m} ({wall:.0f} s wall)", flush=True)
            runs[arm].append((m, wall, cpu))
    acc = {arm: [m["test/accuracy"] for m, _, _ in r] for arm, r in runs.items()}
    f1 = {arm: [m["test/f1_macro"] for m, _, _ in r] for arm, r in runs.items()}
    val = {arm: [m["val/accuracy"] for m, _, _ in r] for arm, r in runs.items()}
    mean = {arm: statistics.fmean(v) for arm, v in acc.items()}
    wins = sum(p > s for p, s in zip(acc["pretrained"], acc["scratch"]))
    ft_wall = max(w for r in runs.values() for _, w, _ in r)
    ft_cpu = max(c for r in runs.values() for _, _, c in r)
    rows = [
        "| run | test/masked_accuracy | test/unigram_accuracy | wall (s) | CPU (s) |",
        "|---|---|---|---|---|",
        f"| MLM pretraining (recipes/text_bert_pretrain.yaml) | {pre['test/masked_accuracy']:.4f} | "
        f"{pre['test/unigram_accuracy']:.4f} | {pre_wall:.0f} | {pre_cpu:.0f} |",
        "",
        "| fine-tuning, 10% labels (recipes/text_bert_finetune.yaml) | seed | val/accuracy | test/accuracy | test/f1_macro | wall (s) | CPU (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, label in (("pretrained", "from the MLM encoder"), ("scratch", "same architecture from scratch")):
        for seed, (m, wall, cpu) in zip(SEEDS, runs[arm]):
            rows.append(f"| {label} | {seed} | {m['val/accuracy']:.4f} | {m['test/accuracy']:.4f} | {m['test/f1_macro']:.4f} | {wall:.0f} | {cpu:.0f} |")
        rows.append(
            f"| **{label}, mean** | {len(SEEDS)} seeds | {statistics.fmean(val[arm]):.4f} | **{mean[arm]:.4f}** | {statistics.fmean(f1[arm]):.4f} | | |"
        )
    emit(
        "text_bert",
        ".venv/bin/strata train recipes/text_bert_pretrain.yaml; then for SEED in 0 1 2: "
        ".venv/bin/strata train recipes/text_bert_finetune.yaml --set seed=SEED --set data.label_seed=SEED "
        "--set data.tokenizer_run=RUN_DIR --set model.init_from=RUN_DIR (and =null for scratch)",
        [
            {"name": "pretrain test/masked_accuracy", "value": pre["test/masked_accuracy"], "unit": "", "note": "held-out files, fixed masks"},
            {"name": "pretrain test/unigram_accuracy", "value": pre["test/unigram_accuracy"], "unit": "", "note": "always the most frequent training token"},
            {"name": "fine-tuned test/accuracy, mean of 3 seeds", "value": mean["pretrained"], "unit": "", "note": f"10% labels; per seed {', '.join(f'{a:.3f}' for a in acc['pretrained'])}"},
            {"name": "scratch test/accuracy, mean of 3 seeds", "value": mean["scratch"], "unit": "", "note": f"same recipe, init_from null; per seed {', '.join(f'{a:.3f}' for a in acc['scratch'])}"},
            {"name": "fine-tuned val/accuracy, mean of 3 seeds", "value": statistics.fmean(val["pretrained"]), "unit": "", "note": "68 validation functions per seed, after the last epoch"},
            {"name": "scratch val/accuracy, mean of 3 seeds", "value": statistics.fmean(val["scratch"]), "unit": "", "note": "68 validation functions per seed, after the last epoch"},
            {"name": "pretrained - scratch (mean accuracy)", "value": mean["pretrained"] - mean["scratch"], "unit": "", "note": f"pretrained ahead in {wins} of {len(SEEDS)} paired seeds"},
            {"name": "pretrain wall time", "value": pre_wall, "unit": "s", "note": f"CPU {pre_cpu:.0f} s (one torch thread); 1-min load average {pre_load:.1f} at start"},
            {"name": "fine-tune wall time, slowest run", "value": ft_wall, "unit": "s", "note": f"CPU {ft_cpu:.0f} s"},
        ],
        table="\n".join(rows),
        description="BERT (recipes/text_bert_*.yaml): MLM pretraining on python_text (BPE), then which-of-8-packages classification with 10% of the labels, pretrained vs scratch over 3 seeds.",
    )


if __name__ == "__main__":
    main()
