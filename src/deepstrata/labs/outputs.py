"""Run a lab and write its measurements (JSON) and figures (PNG) into one directory.

Problem: the CLI (`strata lab ...`) and the benchmark script must produce exactly the same files
from the same measurements. Idea: one function per lab that runs it, writes `<lab>.json` plus its
figures, and returns a short summary that both print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepstrata.labs import plots


def _write_json(path: Path, obj: Any) -> Path:
    from deepstrata.run.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(obj, indent=1))


def trainability_lab(out_dir: Path, *, depths: tuple[int, ...], activations: tuple[str, ...], inits: tuple[str, ...],
                     variants: tuple[str, ...], steps: int, seed: int = 0) -> dict[str, Any]:
    from deepstrata.labs.trainability import sweep

    cells = [c.to_dict() for c in sweep(depths=depths, activations=activations, inits=inits, variants=variants, steps=steps, seed=seed)]
    for c in cells:
        c["first_last_ratio"] = plots.finite(c["first_last_ratio"])
    _write_json(out_dir / "trainability.json", {"steps": steps, "seed": seed, "cells": cells})
    plots.trainability_heatmap(cells, out_dir / "trainability_heatmap.png")
    deepest = max(depths)
    shown = [c for c in cells if c["depth"] == deepest and (c["variant"] in ("plain", "residual"))
             and (c["activation"], c["init"]) in {("sigmoid", "naive"), ("relu", "he"), ("tanh", "xavier")}]
    plots.gradient_norm_curves(shown or cells[:6], out_dir / "trainability_grad_norms.png")
    return {"cells": len(cells), "files": ["trainability.json", "trainability_heatmap.png", "trainability_grad_norms.png"]}


def optimizers_lab(out_dir: Path, *, optimizers: tuple[str, ...], surfaces: tuple[str, ...], steps: int) -> dict[str, Any]:
    from deepstrata.labs.landscapes import SURFACES, landscape_suite

    result = landscape_suite(optimizers=optimizers, surfaces=surfaces, steps=steps)
    summary: dict[str, Any] = {}
    for surface, trajs in result.items():
        target = SURFACES[surface][2]
        summary[surface] = {o: {"lr": t.lr, "steps_to_target": t.steps_to(target), "final_loss": plots.finite(t.losses[-1])} for o, t in trajs.items()}
        plots.landscape_figure(surface, SURFACES[surface][0], trajs, out_dir / f"landscape_{surface}.png")
    _write_json(out_dir / "optimizers.json", {"steps": steps, "targets": {s: SURFACES[s][2] for s in surfaces}, "results": summary})
    return summary


def normalization_lab(out_dir: Path, *, norms: tuple[str, ...], batch_sizes: tuple[int, ...], steps: int, seed: int = 0) -> list[dict]:
    from deepstrata.labs.normalization import sweep

    cells = [c.to_dict() for c in sweep(norms=norms, batch_sizes=batch_sizes, steps=steps, seed=seed)]
    for c in cells:
        c["loss_roughness"] = plots.finite(c["loss_roughness"])
    _write_json(out_dir / "normalization.json", {"steps": steps, "seed": seed, "cells": cells})
    plots.normalization_figure(cells, out_dir / "normalization.png")
    return cells
