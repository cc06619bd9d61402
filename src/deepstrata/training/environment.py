"""The process settings a run asks for: torch's thread count and deterministic algorithms.

Problem: both are process-wide torch flags; a library call that sets them and leaves them set
changes every later computation in the caller's process (hidden global state).
Idea: context managers that set the value for a block and restore the previous one, used by
`train`, `evaluate` and every tool through `Run.environment()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use n intra-op threads inside the block (None: leave as is), then restore the previous number."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms(enabled, warn_only=True) inside the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
