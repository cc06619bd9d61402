"""How long a run took to get going: seconds since this process started, at named moments.

Problem: "training is slow to start" hides in imports, data parsing and setup that no
training-time figure shows; a speedrun's wall time pays all of it.
Idea: read the process's start time from the operating system (Linux `/proc/self/stat`, in
clock ticks since boot) so the interpreter's and every import's cost are counted, and let
`train` mark moments against it and against its own call (run.json `timing`: `process_to_fit_s`
is what `strata train` makes a user wait before training starts; `call_to_fit_s` is the
part inside `train`, the figure that matters when Python calls it many times). Where `/proc`
is missing the process clock starts when this module is first imported, which `since` says.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_IMPORTED = time.time()


def process_start() -> tuple[float, str]:
    """(the process's start as a Unix time, where that figure came from)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc(5): starttime, after the ")" of the command name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK"), "process start"
    except (OSError, ValueError, IndexError):
        return _IMPORTED, "deepstrata.training.startup import"


class Marks:
    """Seconds since the process started and since this object was made, at the moments `mark` names."""

    def __init__(self) -> None:
        self.start, self.since = process_start()
        self.call = time.time()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.time()
        self.marks[f"process_to_{name}_s"] = round(now - self.start, 3)
        self.marks[f"call_to_{name}_s"] = round(now - self.call, 3)

    def as_dict(self) -> dict[str, object]:
        return {**self.marks, "since": self.since}
