"""Train a run's own recipe again from given weights: the fine-tuning that compression tools share.

Problem: magnitude pruning, channel pruning and lottery tickets each train the parent's model
again on the parent's data and recipe. Written in each tool, the copies drift (which callbacks
to drop, where the temporary run goes, which validation figure to keep), and a copy that reads
the model section of config.yaml breaks on a derived run whose architecture is no longer the
recipe's (a channel-pruned run keeps its parent's config.yaml, but its model.json names the
smaller widths).
Idea: one function. It writes the starting weights to a temporary safetensors file and trains
the run's config with
- the model section taken from model.json (what the run's weights are),
- the `pretrained` callback pointing at that file (head kept),
- the recipe's own callbacks minus those the tool replaces, plus the tool's,
- `lr_scale` times the recipe's learning rate, without a progress bar, into a temporary folder
  that is removed once the weights are taken.
It returns the trained model, its test accuracy and the validation accuracy of the weights the
run kept: settings are chosen on the second, the first is for the record.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepstrata.run.run import Run
from deepstrata.tools.base import phase


def recipe_lr(run: Run, scale: float = 1.0) -> float:
    """`scale` times the learning rate of the run's recipe."""
    return float(run.recipe.optimizer.kwargs.get("lr", 1e-3)) * scale


def split_accuracy(run: Run, model: Any, split: str = "test") -> float:
    """Top-1 accuracy of `model` on one of the run's splits."""
    from deepstrata.tools.predictions import split_logits

    logits, labels = split_logits(run, split, model=model)
    return float((logits.argmax(dim=1) == labels).float().mean())


def retrain(
    run: Run,
    start: dict[str, Any],
    *,
    epochs: int,
    lr_scale: float,
    callbacks: Sequence[dict[str, Any]] = (),
    extra_callbacks: Sequence[Any] = (),
    replaced: Sequence[str] = (),
    model: dict[str, Any] | None = None,
    test_weights: str | None = None,
    label: str = "retrain",
) -> tuple[Any, dict[str, float]]:
    """Train the run's recipe for `epochs` from the state dict `start`; (the trained model, its test and validation accuracy).

    callbacks: recipe entries added ({"name": "keep_sparsity"}); extra_callbacks: callback objects added.
    replaced: names of the recipe's own callbacks to drop (`pretrained` always is).
    model: the model section to build ({"name": ..., **kwargs}); by default the run's model.json.
    test_weights: overrides trainer.test_weights (a pruning schedule needs "last").
    """
    from safetensors.torch import save_file

    from deepstrata import api

    section = model or {"name": run.spec["architecture"], **run.spec.get("kwargs", {})}
    dropped = {"pretrained", *replaced}
    with tempfile.TemporaryDirectory(prefix=f"deepstrata-{label}-") as tmp:
        weights = Path(tmp) / "start.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in start.items()}, str(weights))
        lr = recipe_lr(run, lr_scale)
        kept = [c for c in run.config.get("callbacks") or [] if c.get("name") not in dropped]
        chosen = [{"name": "pretrained", "source": str(weights), "keep_head": True}, *callbacks]
        overrides = [
            "model=" + json.dumps(section),
            f"trainer.max_epochs={epochs}",
            f"optimizer.lr={lr}",
            "trainer.progress=off",
            f"output_dir={tmp}/runs",
            "callbacks=" + json.dumps(kept + chosen),
        ]
        if test_weights is not None:
            overrides.append(f"trainer.test_weights={test_weights}")
        phase(f"{label}: training {epochs} epoch(s) at lr {lr:g}")
        result = api.train(run.config, overrides, extra_callbacks=list(extra_callbacks))
        trained = Run.open(result.run_dir)
        tuned = trained.model().eval()
        out = {"test/accuracy": float(result.metrics["test/accuracy"])}
        tested = trained.tested_weights or {}
        record = next((r for r in trained.history if r.get("epoch") == tested.get("epoch")), None)
        if record is not None and "val/accuracy" in record:
            out["val/accuracy"] = float(record["val/accuracy"])  # the kept weights' validation accuracy: what settings are chosen on
    return tuned, out
