"""Compare recipe variants on the validation split only: how the speedrun recipes were chosen.

Problem: a recipe tuned by looking at test scores reports an optimistic test figure; the
choice must be made on validation and the test scored once, for the record.
Idea: train each variant (dotted overrides of one recipe) for the given seeds in one process
through `deepstrata.train`, and print each variant's last-epoch validation accuracy (mean, min,
per seed), its fit time and its time from the `train` call to the fit; the test metrics the
run computes are never printed.

    python benchmarks/_validation_sweep.py recipes/digits_speedrun.yaml \
        '{"chosen": {}, "batch 64, lr 0.01": {"data.batch_size": 64, "optimizer.lr": 0.01}}' 0,1,2,3,4
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the strata CLI sets it, before torch loads


def with_overrides(recipe: dict, overrides: dict) -> dict:
    out = copy.deepcopy(recipe)
    for key, value in overrides.items():
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def validate(recipe: dict, seeds: list[int]) -> tuple[list[float], list[float], list[float]]:
    """(last-epoch val/accuracy, fit seconds, train-call-to-fit seconds) for each seed."""
    import deepstrata.api as api

    vals, fits, setups = [], [], []
    out = tempfile.mkdtemp(prefix="ds_sweep_")
    for seed in seeds:
        run_dir = Path(api.train({**recipe, "seed": seed, "output_dir": out}, ["trainer.progress=off"]).run_dir)
        info = json.loads((run_dir / "run.json").read_text())
        epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        vals.append([r["val/accuracy"] for r in epochs if r.get("scope") == "epoch" and "val/accuracy" in r][-1])
        fits.append(info["fit_time_s"])
        setups.append(info["timing"]["call_to_fit_s"])
    return vals, fits, setups


def main() -> None:
    import yaml

    recipe = yaml.safe_load(Path(sys.argv[1]).read_text())
    variants = json.loads(sys.argv[2])
    seeds = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, 1, 2, 3, 4]
    for name, overrides in variants.items():
        vals, fits, setups = validate(with_overrides(recipe, overrides), seeds)
        print(
            f"{name}: val accuracy mean {statistics.mean(vals):.4f} min {min(vals):.4f} | fit mean {statistics.mean(fits):.2f} s "
            f"| call to fit {statistics.mean(setups):.2f} s | seeds {seeds}: {[round(v, 4) for v in vals]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
