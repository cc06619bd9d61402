"""Character-level GPT (recipes/char_gpt.yaml): held-out bits per character against a bigram model.

Problem: a language model's loss means little without a baseline fitted on the same data, and
a run's time means little on a shared machine without its CPU time.
Idea: run `strata train recipes/char_gpt.yaml` as a user would and report the test split's
bits per character (held-out standard-library FILES), the add-alpha bigram's on the same
windows, their ratio (goal <= 0.70), the wall time, the CPU time of the command (user + system,
all threads) and the load average when it started, and the first generated samples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe  # noqa: E402


def main() -> None:
    m, run_dir, wall, cpu, load = run_recipe("recipes/char_gpt.yaml")
    ratio = m["test/bits_per_char"] / m["test/bigram_bits_per_char"]
    samples = json.loads((run_dir / "samples.json").read_text(encoding="utf-8"))["samples"]
    fit = json.loads((run_dir / "run.json").read_text())["fit_time_s"]
    table = "Samples (temperature 0.8, top-p 0.95; prompt, then the model's continuation):\n\n" + "\n\n".join(
        "```\n" + (s["prompt"] + s["text"])[:400] + "\n```" for s in samples[:2]
    )
    emit(
        "char_gpt",
        ".venv/bin/strata train recipes/char_gpt.yaml --json",
        [
            {"name": "test/bits_per_char", "value": m["test/bits_per_char"], "unit": "bits/char", "note": "held-out stdlib files"},
            {"name": "test/bigram_bits_per_char", "value": m["test/bigram_bits_per_char"], "unit": "bits/char", "note": "add-alpha bigram fitted on the same training windows"},
            {"name": "bits per char / bigram", "value": ratio, "unit": "ratio", "note": "goal <= 0.70"},
            {"name": "test/next_token_accuracy", "value": m["test/next_token_accuracy"], "unit": "", "note": ""},
            {"name": "strata train wall time", "value": wall, "unit": "s", "note": f"fit {fit:.0f} s; 1-min load average {load:.1f} at start (shared 2-core machine)"},
            {"name": "strata train CPU time", "value": cpu, "unit": "s", "note": "user + system; the recipe uses one torch thread, so about the wall time on one free core"},
        ],
        table=table,
        description="4-layer, 128-wide character GPT on Python's standard-library sources (recipes/char_gpt.yaml); test = held-out files.",
    )


if __name__ == "__main__":
    main()
