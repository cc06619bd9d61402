"""Helpers for the tests in this folder that damage a copy of a trained run."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run directory that a test may damage."""
    shutil.copytree(src, dst)
    return dst
