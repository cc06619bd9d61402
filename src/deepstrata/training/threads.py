"""How many intra-op threads a run uses: `trainer.num_threads: auto`.

Problem: torch starts one OpenMP thread per core, and a waiting OpenMP thread spins. On a
laptop whose browser or editor holds a core, every parallel region then waits for the thread
whose core is taken: `strata train recipes/digits_cnn.yaml` took 186.5 s instead of 15.3 s
with one busy loop beside it (issue 20). And a small model trains faster on one thread than
on two: its ops are too small to pay for handing work to a second thread.
Idea: three measurements, all made before the first step.
1. The cores this process may use: `os.sched_getaffinity` (a container or `taskset` limit),
   or `OMP_NUM_THREADS` when the user (or torchrun) set it, which is then obeyed as it is.
2. The cores other processes keep busy: per-core idle time from `/proc/stat` over 0.1 s,
   less this process's own CPU time. The free cores are the usable ones less the busy ones,
   rounded, and at least one.
3. The model's own step: forward and backward on one training batch at each count from 1 to
   the free cores (best of three, after one warm-up), keeping the fewest threads within 10% of
   the fastest. The probe runs in eval mode with the RNG forked and the gradients cleared
   after, so nothing the run computes changes. A step that already takes over 0.25 s is
   large enough to use every free core, and is not timed further.
The CLI also sets `OMP_WAIT_POLICY=PASSIVE` before torch is imported (`cli/main.py`), unless
the user set it, so a core taken in the middle of a run costs waiting threads a sleep rather
than a spin. The choice is logged once and kept in run.json (`threads`) and in every
checkpoint; a resumed run reuses the checkpoint's count, so it goes on with the same arithmetic.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

AUTO = "auto"
PROBE_TOLERANCE = 0.10  # a count with more threads must be this much faster to be chosen
LARGE_STEP_S = 0.25  # a step this slow parallelises well: use every free core, time nothing more
BUSY_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a run uses, with what it was chosen from (stored in run.json)."""

    threads: int
    requested: int | str | None
    cores: int  # cores this process may use
    busy: float = 0.0  # cores' worth of work other processes were doing when measured
    step_ms: dict[int, float] = field(default_factory=dict)  # the probe: threads -> best step time
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["step_ms"] = {str(k): round(v, 3) for k, v in self.step_ms.items()}
        d["busy"] = round(self.busy, 2)
        return d

    def describe(self) -> str:
        """One line for the log: `threads: 1 of 2 cores (auto: 1.0 core busy elsewhere)`."""
        return f"threads: {self.threads} of {self.cores} cores ({self.reason})"


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one, else os.cpu_count()."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """Per-core (idle, total) jiffies from /proc/stat, or None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            times[name] = (idle, sum(values))
    return times


def busy_cores(interval: float = BUSY_INTERVAL_S) -> float:
    """Cores' worth of CPU time other processes used over `interval` seconds (0.0 where unmeasurable)."""
    try:
        allowed = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        allowed = None
    before, own_before, t0 = _cpu_times(), time.process_time(), time.perf_counter()
    if before is None:
        return 0.0
    time.sleep(interval)
    after, own_after, t1 = _cpu_times(), time.process_time(), time.perf_counter()
    if after is None:
        return 0.0
    busy = 0.0
    for name, (idle1, total1) in after.items():
        if (allowed is not None and name not in allowed) or name not in before:
            continue
        idle0, total0 = before[name]
        if total1 > total0:
            busy += 1.0 - (idle1 - idle0) / (total1 - total0)
    own = (own_after - own_before) / max(t1 - t0, 1e-9)  # this process's own threads are not "others"
    return max(0.0, busy - own)


def choose_threads(
    requested: int | str | None,
    *,
    cores: int,
    busy: float = 0.0,
    step_time: Callable[[int], float] | None = None,
    environ: dict[str, str] | None = None,
) -> ThreadChoice:
    """Decide the count from measurements passed in (pure, so every rule is testable).

    requested: an int is used as given; None leaves torch's own setting; "auto" applies the
    rules in the module docstring. `step_time(n)` returns seconds per step at n threads.
    """
    import torch

    if requested is None:
        return ThreadChoice(torch.get_num_threads(), None, cores, reason="torch's default: trainer.num_threads is null")
    if requested != AUTO:
        return ThreadChoice(int(requested), requested, cores, reason="trainer.num_threads")
    env = os.environ if environ is None else environ
    pinned = env.get("OMP_NUM_THREADS", "").strip()
    if pinned.isdigit() and int(pinned) >= 1:
        return ThreadChoice(int(pinned), AUTO, cores, reason=f"auto: OMP_NUM_THREADS={pinned} is set")
    free = max(1, min(cores, int(cores - busy + 0.5)))
    load = f"{busy:.1f} of {cores} cores busy elsewhere"
    if free == 1:
        return ThreadChoice(1, AUTO, cores, busy, reason=f"auto: {load}" + ("; one core free" if cores > 1 else ""))
    if step_time is None:
        return ThreadChoice(free, AUTO, cores, busy, reason=f"auto: {load}; every free core (no model step was timed)")
    timings = {free: step_time(free)}
    if timings[free] >= LARGE_STEP_S:
        return ThreadChoice(free, AUTO, cores, busy, {free: timings[free] * 1e3},
                            reason=f"auto: {load}; a {timings[free]:.2f} s step uses every free core")
    for n in range(1, free):
        timings[n] = step_time(n)
    fastest = min(timings.values())
    chosen = min(n for n, t in timings.items() if t <= fastest * (1 + PROBE_TOLERANCE))
    shown = ", ".join(f"{n}: {timings[n] * 1e3:.1f} ms" for n in sorted(timings))
    return ThreadChoice(chosen, AUTO, cores, busy, {n: t * 1e3 for n, t in timings.items()},
                        reason=f"auto: {load}; step time by threads {shown}")


@contextlib.contextmanager
def _probe_state(task: Any) -> Iterator[None]:
    """Eval mode, forked RNG, and gradients cleared afterwards: the probe leaves no trace in the run."""
    import torch

    was_training = task.training
    grads = [p for p in task.parameters() if p.requires_grad]
    task.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            yield
    finally:
        for p in grads:
            p.grad = None
        task.train(was_training)


def step_timer(task: Any, batch: Any, *, repeats: int = 3) -> Callable[[int], float]:
    """`time_at(n)`: the best of `repeats` forward+backward steps of `task` on `batch` at n threads, in seconds."""
    import torch

    def time_at(n: int) -> float:
        torch.set_num_threads(n)
        best = math.inf
        with _probe_state(task):
            for i in range(repeats + 1):  # the first call warms up (allocations, kernel choice)
                start = time.perf_counter()
                task.shared_step(batch).loss.backward()
                elapsed = time.perf_counter() - start
                if i and elapsed < best:
                    best = elapsed
                if i == 0 and elapsed >= 2 * LARGE_STEP_S:
                    return elapsed  # a big step: one sample says enough
        return best

    return time_at


def use_threads(requested: int | str | None, exp: Any = None, *, device: Any = None, previous: int | None = None) -> ThreadChoice:
    """Choose the thread count for `exp` (an Experiment; None: no step to time) and apply it with torch.set_num_threads.

    previous: the count a resumed run's checkpoint was written under; under "auto" it is reused.
    Call inside `environment.torch_threads(None)` so the caller's setting comes back afterwards.
    """
    import torch

    cores = usable_cores()
    if requested == AUTO and previous:
        choice = ThreadChoice(int(previous), AUTO, cores, reason="auto: the count the resumed run's checkpoint was written with")
    elif requested == AUTO:
        on_cpu = device is None or getattr(device, "type", str(device)) == "cpu"
        timer = None
        if exp is not None and on_cpu:
            batch = exp.probe_batch()
            timer = None if batch is None else step_timer(exp.task, batch)
        busy = busy_cores()
        try:
            choice = choose_threads(AUTO, cores=cores, busy=busy, step_time=timer)
        except Exception:  # noqa: BLE001 - a step that fails here fails the setup check next, with a message that says why
            choice = choose_threads(AUTO, cores=cores, busy=busy, step_time=None)
    else:
        choice = choose_threads(requested, cores=cores)
    torch.set_num_threads(choice.threads)
    return choice
