"""Run a recipe as a user would (`strata train --json`) and measure it: metrics, run dir, wall and CPU time.

Problem: a recipe's time on a shared machine says little without its CPU time and the load.
Idea: time the `strata train` child process, read its rusage (user + system, all threads) and
the 1-minute load average when it started.
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

REPO = Path(__file__).resolve().parents[1]
STRATA = str(Path(sys.executable).with_name("strata"))


def run_recipe(recipe: str, *sets: str) -> tuple[dict, Path, float, float, float]:
    """(test metrics, run dir, wall s, CPU s of the child, 1-min load average at start)."""
    out = tempfile.mkdtemp(prefix="ds_bench_")
    cmd = [STRATA, "train", recipe, "--json", "--set", f"output_dir={out}", "--set", "trainer.progress=off"]
    for s in sets:
        cmd += ["--set", s]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["metrics"], Path(result["run_dir"]), wall, cpu, load


def time_figures(name: str, run_dir: Path, wall: float, cpu: float, load: float) -> list[dict]:
    fit = json.loads((run_dir / "run.json").read_text())["fit_time_s"]
    return [
        {"name": f"{name} wall time", "value": wall, "unit": "s", "note": f"fit {fit:.0f} s; 1-min load average {load:.1f} at start (shared 2-core machine)"},
        {"name": f"{name} CPU time", "value": cpu, "unit": "s", "note": "user + system; one torch thread, so about the wall time on a free core"},
    ]
