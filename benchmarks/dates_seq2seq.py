"""Date normalisation (recipes/dates_gru_attention.yaml): exact match on 2,000 held-out dates.

Problem: a seq2seq model is useful only if its whole output is right; token accuracy flatters.
Idea: train the recipe as a user would and report greedy and beam-search exact match on dates
never seen in training, with wall and CPU time, and a few decoded examples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import run_recipe, time_figures  # noqa: E402



def main(recipe: str = "recipes/dates_gru_attention.yaml", benchmark: str = "dates_seq2seq") -> None:
    m, run_dir, wall, cpu, load = run_recipe(recipe)
    name = Path(recipe).stem
    examples = json.loads((run_dir / "seq2seq_examples.json").read_text())
    table = "| input | decoded | target |\n|---|---|---|\n" + "\n".join(f"| {e['source']} | {e['prediction']} | {e['target']} |" for e in examples)
    figures = [
        {"name": f"{name} test/exact_match", "value": m["test/exact_match"], "unit": "", "note": "greedy; 2,000 held-out dates; goal >= 0.98"},
        {"name": f"{name} test/token_accuracy", "value": m["test/token_accuracy"], "unit": "", "note": ""},
    ]
    beam = [k for k in m if k.startswith("test/exact_match_beam")]
    figures += [{"name": f"{name} {k}", "value": m[k], "unit": "", "note": "beam search"} for k in beam]
    emit(
        benchmark,
        f".venv/bin/python benchmarks/run_all.py --only {benchmark}",
        figures + time_figures("strata train", run_dir, wall, cpu, load),
        table=table,
        description=f"{recipe}: human-written dates in 20 formats -> ISO 8601; test dates never occur in training.",
    )


if __name__ == "__main__":
    main()
