"""What `trainer.num_threads: auto` picks for every shipped recipe on this machine, and from what.

Problem: a recipe that pins `num_threads: 1` is right for a small model on a busy machine and
wrong for a large one on a quiet machine (char_gpt trains 1.6x faster on two threads), and a
pin chosen by hand on one machine is a guess on the next. Issue 20 asks that recipes drop their
pins where `auto` does as well.
Idea: for each recipe, build its experiment as `strata train` does and run the same choice
(`training/threads.use_threads`) three times on a quiet machine under the CLI's passive wait
policy: the timed step at each count and the count chosen. A recipe whose data needs an earlier
run (a fine-tune of a pretraining run) is listed with the reason it was not built.

    python benchmarks/thread_choice.py        # about 3 minutes on 2 cores
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `strata` sets it, before torch loads
os.environ.pop("OMP_NUM_THREADS", None)  # `auto` would obey it and time nothing

import sys  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRIES = 3


def main() -> None:
    from deepstrata.config import load_recipe
    from deepstrata.errors import UserError
    from deepstrata.experiment import build_experiment
    from deepstrata.training.environment import torch_threads
    from deepstrata.training.threads import usable_cores, use_threads

    rows, data, chosen = [], {}, Counter()
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        name = path.stem
        recipe = load_recipe(path)
        pinned = recipe.trainer.num_threads
        try:
            with torch_threads(None):
                exp = build_experiment(load_recipe(path, ["trainer.num_threads=auto"]))
                picks = [use_threads("auto", exp) for _ in range(TRIES)]
        except UserError as e:  # e.g. a fine-tune whose pretraining run is not there
            rows.append(f"| {name} | {pinned} | – | – | – | not built: {str(e).splitlines()[0][:90]} |")
            continue
        counts = sorted({n for p in picks for n in p.step_ms})
        ms = {n: min(p.step_ms[n] for p in picks if n in p.step_ms) for n in counts}
        threads = [p.threads for p in picks]
        chosen[max(set(threads), key=threads.count)] += 1
        data[name] = {"pinned": pinned, "threads": threads, "step_ms": [p.step_ms for p in picks]}
        shown = {n: f"{ms[n]:.1f}" for n in counts}
        rows.append(f"| {name} | {pinned} | {shown.get(1, '–')} | {shown.get(2, '–')} | {', '.join(map(str, threads))} | {picks[-1].reason.split('; ', 1)[-1][:60]} |")
        print(rows[-1], flush=True)
    table = (f"**`auto` on every recipe** ({usable_cores()} cores, quiet, passive wait policy; step: best forward+backward on the first training batch, "
             f"ms, best over {TRIES} choices; pinned: the recipe's `trainer.num_threads`)\n\n"
             "| recipe | pinned | step ms, 1 thread | 2 threads | chosen (3 tries) | note |\n|---|---|---|---|---|---|\n" + "\n".join(rows))
    figures = [{"name": f"recipes for which auto chose {n} thread{'s' if n > 1 else ''}", "value": c, "unit": "recipes", "note": "quiet machine, majority of 3 tries"}
               for n, c in sorted(chosen.items())]
    emit("thread_choice", ".venv/bin/python benchmarks/thread_choice.py", figures, table=table, data=data,
         description="What trainer.num_threads: auto chooses for each shipped recipe on a quiet machine (issue 20), with the step times it chose from.")


if __name__ == "__main__":
    main()
