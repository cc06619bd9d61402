"""How long `strata --help` and `strata list models` take, against bare Python start-up.

Problem: a CLI that imports torch for `--help` makes every interaction feel slow.
Idea: time the commands as subprocesses (median of 15 runs each, interleaved) next to
`python -c pass`, the floor any Python CLI pays.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

STRATA = str(Path(sys.executable).with_name("strata"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "strata --help": [STRATA, "--help"],
    "strata list models": [STRATA, "list", "models"],
}


def main() -> None:
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(15):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["python -c pass"]
    figures = [
        {"name": f"{k}, median", "value": v, "unit": "s", "note": "goal < 0.5 s" if k != "python -c pass" else "baseline"} for k, v in med.items()
    ]
    figures.append({"name": "strata --help / python -c pass", "value": med["strata --help"] / base, "unit": "ratio", "note": "same run"})
    emit("cli_startup", ".venv/bin/python benchmarks/cli_startup.py", figures, description="Start-up time of the CLI (median of 15 interleaved runs).")


if __name__ == "__main__":
    main()
