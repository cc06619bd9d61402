"""Helpers shared by benchmark scripts: the machine description and the result line."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def machine() -> str:
    import torch

    cores = os.cpu_count()
    dev = f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only"
    return f"{platform.machine()} {cores} cores, {dev}, torch {torch.__version__}, Python {sys.version.split()[0]}"


def emit(
    benchmark: str,
    command: str,
    figures: list[dict[str, Any]],
    *,
    table: str = "",
    description: str = "",
    images: list[str] = (),
    data: dict[str, Any] | None = None,
) -> None:
    """Print the one JSON line that run_all.py reads (must be the last line on stdout).

    images: figures this run wrote, as paths relative to docs/ (e.g. "img/x.png"); RESULTS.md shows them.
    data: raw measurements kept in the stored result (not rendered), e.g. for a later partial re-run.
    """
    record = {"benchmark": benchmark, "command": command, "description": description, "machine": machine(), "figures": figures, "table": table}
    record["images"] = list(images)
    if data:
        record["data"] = data
    print(json.dumps(record))
