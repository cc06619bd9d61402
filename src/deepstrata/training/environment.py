"""The process settings a run asks for: torch's thread count and deterministic algorithms.

Problem: both are process-wide torch flags; a library call that sets them and leaves them set
changes every later computation in the caller's process (hidden global state).
Idea: context managers that set the value for a block and restore the previous one, used by
`train`, `evaluate` and every tool through `Run.environment()`. `trainer.num_threads: auto` is
resolved by training/threads.py.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | str | None) -> Iterator[None]:
    """Use n intra-op threads inside the block, then restore the previous number.

    None leaves the count as it is; "auto" takes the free cores (training/threads.py; with no
    model step to time, as for evaluation and tools).
    """
    previous = torch.get_num_threads()
    if n == "auto":
        from deepstrata.training.threads import use_threads

        use_threads(n)
    elif n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms(enabled, warn_only=True) inside the block; the previous
    mode and warn-only flag come back afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    set_deterministic(enabled, warn_only=True)
    try:
        yield
    finally:
        set_deterministic(previous[0], warn_only=previous[1])


def set_deterministic(enabled: bool, *, warn_only: bool) -> None:
    """`torch.use_deterministic_algorithms`, without importing torch's compiler when it is not loaded.

    The public call also sets `torch._inductor.config.deterministic`, and importing that module
    cost 0.97 s of `strata train`'s start-up (measured on 2 cores, docs/training.md "Start-up"). When
    the compiler is not loaded nothing compiled can run yet, so only the eager flag is set; a
    later `import torch._inductor` starts from its own default, as in any process.
    """
    eager_only = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or eager_only is None:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    else:
        eager_only(enabled, warn_only=warn_only)
