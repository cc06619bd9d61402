"""The trainer's state: everything a callback may read or change, in one explicit object.

Problem: callbacks that reach into a trainer's private attributes break whenever the loop is
touched, and hidden state cannot be checkpointed.
Idea: the loop keeps its counters and latest metrics in one dataclass; callbacks act only
through it (`state.should_stop = True`), and it round-trips through `state_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainerState:
    stage: str = "idle"  # "fit", "validate", "test"
    epoch: int = 0  # epochs completed before the current one
    global_step: int = 0  # optimizer steps taken
    batch_idx: int = 0  # batches done in the current epoch
    should_stop: bool = False
    skip_step: bool = False  # a callback (the non-finite guard) vetoes this optimizer step
    stop_reason: str = ""
    train_metrics: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    last_step_metrics: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if hasattr(self, key):
                setattr(self, key, value)
