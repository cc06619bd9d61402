"""BERT pretraining and fine-tuning on the standard library's text (recipes/text_bert_*.yaml).

Problem: "pretraining helps" is a claim about a comparison: the same architecture, the same
few labels, with and without the pretrained encoder.
Idea: run the masked-LM pretraining recipe (masked-token accuracy vs always guessing the most
frequent token), then fine-tune on 10% of the labels of the package-of-a-function task twice,
once from the pretrained encoder and once from scratch, and report both held-out accuracies.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from char_gpt import run_recipe  # noqa: E402


def main() -> None:
    pre, pre_dir, pre_wall, pre_cpu, load = run_recipe("recipes/text_bert_pretrain.yaml")
    print(f"pretrain: {pre}", flush=True)
    tuned, _, tuned_wall, tuned_cpu, _ = run_recipe("recipes/text_bert_finetune.yaml", f"model.init_from={pre_dir}")
    print(f"fine-tuned from pretraining: {tuned}", flush=True)
    scratch, _, scratch_wall, scratch_cpu, _ = run_recipe("recipes/text_bert_finetune.yaml", "model.init_from=null")
    print(f"from scratch: {scratch}", flush=True)
    table = (
        "| run | test/accuracy | test/f1_macro | wall (s) | CPU (s) |\n|---|---|---|---|---|\n"
        f"| fine-tuned from MLM pretraining, 10% labels | {tuned['test/accuracy']:.4f} | {tuned['test/f1_macro']:.4f} | {tuned_wall:.0f} | {tuned_cpu:.0f} |\n"
        f"| same architecture from scratch, 10% labels | {scratch['test/accuracy']:.4f} | {scratch['test/f1_macro']:.4f} | {scratch_wall:.0f} | {scratch_cpu:.0f} |"
    )
    emit(
        "text_bert",
        ".venv/bin/strata train recipes/text_bert_pretrain.yaml; .venv/bin/strata train recipes/text_bert_finetune.yaml "
        "--set model.init_from=RUN_DIR; ... --set model.init_from=null",
        [
            {"name": "pretrain test/masked_accuracy", "value": pre["test/masked_accuracy"], "unit": "", "note": "held-out files, fixed masks"},
            {"name": "pretrain test/unigram_accuracy", "value": pre["test/unigram_accuracy"], "unit": "", "note": "always the most frequent training token"},
            {"name": "fine-tuned test/accuracy (10% labels)", "value": tuned["test/accuracy"], "unit": "", "note": "8 packages, held-out files"},
            {"name": "scratch test/accuracy (10% labels)", "value": scratch["test/accuracy"], "unit": "", "note": "same architecture and recipe, no pretraining"},
            {"name": "pretrain wall / CPU time", "value": pre_wall, "unit": "s", "note": f"CPU {pre_cpu:.0f} s; 1-min load average {load:.1f} at start"},
        ],
        table=table,
        description="2-layer, 64-wide BERT: MLM pretraining on python_text (BPE), then which-of-8-packages classification with 10% of the labels.",
    )


if __name__ == "__main__":
    main()
