"""What a run records about itself: model.json's description and run.json.

Problem: a model file alone cannot say which data split it was tested on, which software made
it, or (for a pruned or calibrated model) which run and tool it came from; without that, a
later evaluation can silently describe other data and a derived model loses its history.
Idea: training writes two small JSON files beside the weights: `model.json` (architecture,
arguments, task, input spec, class names: enough to rebuild and use the model) and `run.json`
(split hashes, environment, wall time, status and, for derived runs, `derived_from`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from deepstrata.run.atomic import atomic_write_text
from deepstrata.run.run_dir import RUN_INFO


def model_spec(exp: Any) -> dict[str, Any]:
    """model.json's content for a built experiment (besides the version, added on save)."""
    return {
        "architecture": exp.recipe.model.name,
        "kwargs": exp.recipe.model.kwargs,
        "task": exp.recipe.task.name,  # the resolved recipe always names its task
        "class_names": exp.data.class_names,
        "input_spec": exp.data.input_spec,
        "dataset": exp.data.name,
        "recipe": exp.recipe.name,
    }


def environment(device: Any, threads: int | None = None) -> dict[str, Any]:
    """Versions and machine facts that can change a run's numbers; threads: the count the run used (default: torch's now)."""
    import numpy as np
    import torch

    from deepstrata import __version__

    return {
        "deepstrata": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": threads or torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # as the process started (cli/main.py sets PASSIVE)
    }


def write_run_info(run_dir: Path, exp: Any, device: Any, *, wall_time_s: float, fit_time_s: float, **extra: Any) -> dict[str, Any]:
    """Write run.json for a finished training run; `extra` adds keys (status, resume history, ...)."""
    info = {
        "recipe": exp.recipe.name,
        "seed": exp.recipe.seed,
        "status": "finished",
        "split": exp.data.split,
        "class_names": exp.data.class_names,
        "parameters": sum(p.numel() for p in exp.model.parameters()),
        "wall_time_s": round(wall_time_s, 3),
        "fit_time_s": round(fit_time_s, 3),
        "environment": environment(device, threads=extra.get("threads", {}).get("threads")),
        **extra,
    }
    write_info(run_dir, info)
    return info


def write_info(run_dir: Path, info: dict[str, Any]) -> Path:
    return atomic_write_text(Path(run_dir) / RUN_INFO, json.dumps(info, indent=2) + "\n")
