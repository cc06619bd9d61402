"""Checkpoint files: a kill during a write never corrupts the last good file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    torch.save({"step": torch.tensor(7)}, target)
    script = f"""
import os, signal
from pathlib import Path
from deepstrata.run.atomic import atomic_write

def half_then_die(path: Path) -> None:
    path.write_bytes(b"PK-not-a-whole-checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(Path({str(target)!r}), half_then_die)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9
    assert int(torch.load(target, weights_only=True)["step"]) == 7  # still the old, whole file
