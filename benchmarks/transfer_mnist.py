"""Transfer learning on MNIST: pretrain on digits 0-4, adapt to 5-9 with 50 labels per class.

Problem: whether reusing a network's features helps is an empirical question; the answer
depends on the strategy and on how strong the from-scratch baseline is.
Idea: run the commands a user would: `strata train recipes/mnist04_cnn.yaml` (source task),
`strata train recipes/mnist59_finetune.yaml` (the same network from scratch on the 250
labelled 5-9 images) and `strata finetune RUN recipes/mnist59_finetune.yaml --strategy S`
for each strategy; every target run uses the same recipe (data, epochs, optimizer) and is
tested on the official test images of digits 5-9.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STRATA = str(Path(sys.executable).with_name("strata"))
STRATEGIES = ["feature_extraction", "fine_tuning", "gradual_unfreezing"]


def strata(*args: str) -> tuple[dict, float, float]:
    """(the command's JSON result, wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([STRATA, *args, "--json"], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"strata {' '.join(args)} failed ({proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, cpu


def main() -> None:
    out = tempfile.mkdtemp(prefix="ds_transfer_")
    common = ["--set", f"output_dir={out}", "--set", "trainer.progress=off"]
    load = os.getloadavg()[0]
    source, src_wall, src_cpu = strata("train", "recipes/mnist04_cnn.yaml", *common)
    print(f"source 0-4: {source['metrics']['test/accuracy']:.4f} ({src_wall:.0f} s wall, {src_cpu:.0f} s CPU)", flush=True)
    rows = []
    scratch, wall, cpu = strata("train", "recipes/mnist59_finetune.yaml", *common)
    rows.append(("from scratch", scratch["metrics"]["test/accuracy"], wall, cpu))
    print(f"scratch: {rows[-1][1]:.4f}", flush=True)
    for s in STRATEGIES:
        res, wall, cpu = strata("finetune", source["run_dir"], "recipes/mnist59_finetune.yaml", "--strategy", s, *common)
        rows.append((s, res["metrics"]["test/accuracy"], wall, cpu))
        print(f"{s}: {rows[-1][1]:.4f}", flush=True)
    base = rows[0][1]
    table = (
        "| digits 5-9, 50 labels per class | test accuracy | vs scratch (points) | wall (s) | CPU (s) |\n|---|---|---|---|---|\n"
        + "\n".join(f"| {n} | {a:.4f} | {100 * (a - base):+.1f} | {w:.0f} | {c:.0f} |" for n, a, w, c in rows)
    )
    figures = [{"name": "source: digits 0-4 test accuracy", "value": source["metrics"]["test/accuracy"], "unit": "", "note": f"1 epoch, {src_cpu:.0f} s CPU"}]
    figures += [{"name": f"5-9 {n} test accuracy", "value": a, "unit": "", "note": f"{100 * (a - base):+.1f} points vs scratch"} for n, a, _, _ in rows]
    emit(
        "transfer_mnist",
        "strata train recipes/mnist04_cnn.yaml; strata train recipes/mnist59_finetune.yaml; "
        "strata finetune RUN recipes/mnist59_finetune.yaml --strategy {feature_extraction,fine_tuning,gradual_unfreezing}",
        figures,
        table=table,
        description=f"Small CNN pretrained on MNIST 0-4, adapted to 5-9 with 250 labelled images (50 per class); official 5-9 test images. 1-min load average {load:.1f} at start.",
    )


if __name__ == "__main__":
    main()
