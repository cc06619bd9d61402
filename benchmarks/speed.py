"""Speed on a busy machine: `strata train` beside a process that holds one core, against a quiet machine.

Problem: a learner's laptop runs a browser and an editor beside training. With torch's default
(one OpenMP thread per core, waiting threads spinning) a single busy loop on one of two cores
made `strata train recipes/digits_cnn.yaml` 12x slower (issue 20).
Idea: time the recipe as a user runs it, quiet and with a competing busy loop
(`python -c "while True: pass"`, started and stopped by this script), under the defaults
(`trainer.num_threads: auto`, the CLI's passive OpenMP wait policy) and under the old behaviour
(torch's default thread count, OpenMP's default wait policy: the Python API with
`trainer.num_threads=null`, no CLI, so nothing sets the policy). Quiet and busy runs are
interleaved; each row's ratio is against the quiet median of its own configuration, all in one
run. The thread count each run chose comes from its run.json.
A second table says why the wait policy is passive: digits_cnn at fixed thread counts under
libgomp's wait settings (`OMP_WAIT_POLICY=PASSIVE`, `GOMP_SPINCOUNT=n`: spin n times, then
sleep; the default spins 300,000 times), quiet and busy, by fit time from run.json.

    python benchmarks/speed.py              # about 15 minutes on 2 cores
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STRATA = str(Path(sys.executable).with_name("strata"))
REPEATS = 2
CASES = [  # (label, recipe, extra --set values)
    ("digits_cnn", "recipes/digits_cnn.yaml", []),
    ("mnist_lenet, 2 epochs", "recipes/mnist_lenet.yaml", ["trainer.max_epochs=2"]),
]
OLD_API = "import json, sys; from deepstrata import api; print(json.dumps({'run_dir': str(api.train(sys.argv[1], sys.argv[2:]).run_dir)}))"


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """One single-threaded busy loop for the duration of the block."""
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # let it reach the run queue before the run measures the load
    try:
        yield
    finally:
        loop.kill()
        loop.wait()


def train(recipe: str, sets: list[str], *, old: bool, threads: str | None = None, wait: dict[str, str] | None = None) -> tuple[float, dict]:
    """(wall seconds from launch to exit, the run's run.json) for one training run.

    old: through the Python API with torch's default threads and no wait policy (unless `wait`
    gives one); threads: a fixed trainer.num_threads for the API path.
    """
    out = tempfile.mkdtemp(prefix="ds_speed_")
    sets = [f"output_dir={out}", "trainer.progress=off", *sets]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update(wait or {})
    if old:
        cmd = [sys.executable, "-c", OLD_API, recipe, *sets, f"trainer.num_threads={threads or 'null'}"]
    else:
        cmd = [STRATA, "train", recipe, "--json", *[a for s in sets for a in ("--set", s)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    return wall, json.loads((run_dir / "run.json").read_text())


WAITS = [  # (label, thread count, environment): digits_cnn, why the policy is passive
    ("1 thread", "1", {}),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", "2", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("2 threads, GOMP_SPINCOUNT=2000", "2", {"GOMP_SPINCOUNT": "2000"}),
    ("2 threads, GOMP_SPINCOUNT=20000", "2", {"GOMP_SPINCOUNT": "20000"}),
    ("2 threads, libgomp's default wait", "2", {}),
]


def quiet_then_busy(recipe: str, sets: list[str], **options: Any) -> tuple[tuple[float, dict], tuple[float, dict]]:
    """One `train` on the quiet machine, then the same beside a busy core: ((wall, run.json), (wall, run.json))."""
    quiet = train(recipe, sets, **options)
    with busy_core():
        busy = train(recipe, sets, **options)
    return quiet, busy


def wait_policies(data: dict) -> str:
    """The table of fit times by wait setting, quiet and beside a busy core."""
    rows = []
    for label, threads, wait in WAITS:
        (_, quiet), (_, busy) = quiet_then_busy(CASES[0][1], [], old=True, threads=threads, wait=wait)
        q, b = quiet["fit_time_s"], busy["fit_time_s"]
        data[f"wait / {label}"] = {"quiet_fit_s": q, "busy_fit_s": b}
        rows.append(f"| {label} | {q:.1f} | {b:.1f} | {b / q:.1f}x |")
        print(rows[-1], flush=True)
    return ("**Why the wait policy is passive** (digits_cnn fit time from run.json, seconds; threads fixed; "
            "busy: one busy loop beside the run, from its start)\n\n"
            "| threads, wait setting | quiet fit s | busy fit s | busy / quiet |\n|---|---|---|---|\n" + "\n".join(rows))


def main() -> None:
    figures, rows, data = [], [], {}
    for label, recipe, sets in CASES:
        configs = [("defaults (auto, passive wait)", False)]
        if label == "digits_cnn":  # the old behaviour beside a busy core takes ~3 min here; ~10x that for MNIST
            configs.append(("old (torch threads, default wait)", True))
        for name, old in configs:
            quiet, busy, chosen = [], [], {"quiet": [], "busy": []}
            for _ in range(REPEATS if not old else 1):
                (quiet_wall, quiet_info), (busy_wall, busy_info) = quiet_then_busy(recipe, sets, old=old)
                quiet.append(quiet_wall)
                busy.append(busy_wall)
                chosen["quiet"].append(quiet_info["threads"]["threads"])
                chosen["busy"].append(busy_info["threads"]["threads"])
                print(f"{label} {name}: quiet {quiet[-1]:.1f} s, busy {busy[-1]:.1f} s, threads {chosen['quiet'][-1]}/{chosen['busy'][-1]}", flush=True)
            q, b = statistics.median(quiet), statistics.median(busy)
            data[f"{label} / {name}"] = {"quiet_s": quiet, "busy_s": busy, "threads": chosen}
            rows.append(f"| {label} | {name} | {q:.1f} | {b:.1f} | {b / q:.2f}x | {', '.join(map(str, chosen['quiet']))} | {', '.join(map(str, chosen['busy']))} |")
            goal = "; goal <= 1.3x" if not old else "; the behaviour before issue 20"
            figures.append({"name": f"{label}: busy / quiet wall time, {name}", "value": b / q, "unit": "x",
                            "note": f"quiet {q:.1f} s, busy {b:.1f} s (median of {len(quiet)}){goal}"})
    table = (
        "**Beside a busy core** (`strata train RECIPE` wall time, launch to exit; busy: one `python -c \"while True: pass\"` "
        "on the same 2 cores; threads: what each run chose, from run.json)\n\n"
        "| recipe | configuration | quiet s | busy s | busy / quiet | threads (quiet) | threads (busy) |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n" + wait_policies(data)
    )
    emit("speed", ".venv/bin/python benchmarks/speed.py", figures, table=table, data=data,
         description="Training speed on a busy machine (issue 20): the defaults against torch's own thread and wait settings, in one run.")


if __name__ == "__main__":
    main()
