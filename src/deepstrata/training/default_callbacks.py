"""The callbacks every run gets, assembled from the recipe's trainer section.

Problem: checkpointing, the metrics file, the non-finite guard, gradient clipping and the
progress display are options of the trainer section, but the loop itself must know none of
them (it has no optional behaviour), and the API should not hand-build them either.
Idea: one function turns the recipe into the list of registered callbacks, by name: the
defaults every run has, those the trainer section asks for, the recipe's own `callbacks:`,
and the schedule when it listens to validation (reduce_on_plateau is a callback).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from deepstrata.config import ComponentSpec, Recipe
from deepstrata.experiment import build_component
from deepstrata.training.callbacks.base import Callback

build_callback = partial(build_component, "callback")


def default_callbacks(recipe: Recipe, run_dir: Path, scheduler: Any = None) -> list[Callback]:
    """Every callback of a run of `recipe` writing into `run_dir`, in hook order."""
    t = recipe.trainer
    run = str(run_dir)
    checkpoint = ComponentSpec(name="checkpoint", monitor=t.monitor, mode=t.monitor_mode, save_top_k=t.save_top_k, every_n_steps=t.checkpoint_every_n_steps)
    callbacks = [
        build_callback(ComponentSpec(name="metrics_logger"), "callbacks", run_dir=run),
        build_callback(checkpoint, "callbacks", run_dir=run),
    ]
    if t.nonfinite != "off":
        callbacks.append(build_callback(ComponentSpec(name="nonfinite_guard", policy=t.nonfinite), "callbacks"))
    if t.gradient_clip_norm is not None or t.gradient_clip_value is not None:
        clip = ComponentSpec(name="grad_clip", max_norm=t.gradient_clip_norm, value=t.gradient_clip_value)
        callbacks.append(build_callback(clip, "callbacks"))
    callbacks.append(build_callback(ComponentSpec(name="progress", mode=t.progress), "callbacks"))
    callbacks += [
        build_callback(spec, f"callbacks.{i}", run_dir=run, monitor=t.monitor, mode=t.monitor_mode)
        for i, spec in enumerate(recipe.callbacks)
    ]
    if isinstance(scheduler, Callback):
        callbacks.append(scheduler)
    return callbacks
