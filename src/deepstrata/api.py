"""The Python API: what the CLI calls, and what a notebook user calls directly.

Problem: a toolkit usable only from a CLI cannot be scripted, and one usable only from
Python cannot be driven from a shell; two code paths drift apart.
Idea: the CLI is a thin layer over four functions: `train` (a recipe file, dict or Recipe),
`evaluate` (a finished run directory), `load` (a run directory -> a ready `Predictor`) and
`create` (any registered component by name).
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from deepstrata.config import Recipe, load_recipe
from deepstrata.errors import UserError
from deepstrata.experiment import Experiment, build_component, build_experiment
from deepstrata.run import artifact
from deepstrata.run.atomic import atomic_write_text
from deepstrata.run.run_dir import CONFIG, METRICS, PREDICTIONS, REPORT, RUN_INFO, new_run_dir
from deepstrata.training.callbacks.base import Callback
from deepstrata.predictor import Predictor
from deepstrata.training.trainer import Trainer, resolve_device


@dataclass
class RunResult:
    """What `train` and `evaluate` return: where the run lives and its final metrics."""

    run_dir: Path
    metrics: dict[str, float]

    def to_json(self) -> str:
        return json.dumps({"run_dir": str(self.run_dir), "metrics": self.metrics})


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use n intra-op threads inside the block, then restore the previous number."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
    *,
    extra_callbacks: Sequence[Callback] = (),
    resume: str | Path | None = None,
) -> RunResult:
    """Train and test a recipe; write the run directory; return its test metrics.

    `resume=RUN_DIR` continues that run from its checkpoints/last.pt, mid-epoch if it was
    written mid-epoch (the recipe is the run's config.yaml; `overrides` may still change it).
    Under `torchrun` (trainer.strategy auto/ddp) every rank trains; only rank 0 writes.

    >>> result = deepstrata.train("recipes/digits_cnn.yaml", ["trainer.max_epochs=2"])
    >>> result.metrics["test/accuracy"]
    """
    from deepstrata.training.checkpoint import load_checkpoint
    from deepstrata.training.precision import build_precision
    from deepstrata.training.strategy import build_strategy, local_device

    checkpoint = None
    if resume is not None:
        resume = _check_run_dir(resume)
        checkpoint = load_checkpoint(resume / "checkpoints" / "last.pt")
        recipe = load_recipe(resume / CONFIG, overrides)
    else:
        recipe = load_recipe(recipe, overrides)
    started = time.time()
    t = recipe.trainer
    with torch_threads(t.num_threads), _deterministic(t.deterministic):
        device = local_device(resolve_device(t.device))
        strategy = build_strategy(t.strategy, device)  # joins the process group under torchrun
        exp = build_experiment(recipe)  # data errors surface here, before the run dir exists
        strategy.prepare_model(exp.model)
        optimizer = exp.build_optimizer()
        scheduler = exp.build_scheduler(optimizer)
        if resume is not None:
            run_dir = resume
        else:
            run_dir = strategy.broadcast(new_run_dir(recipe.output_dir, recipe.name) if strategy.is_rank_zero else None)
            if strategy.is_rank_zero:
                atomic_write_text(run_dir / CONFIG, exp.recipe.to_yaml())
        callbacks = _callbacks(exp, run_dir, scheduler) + list(extra_callbacks)
        if not strategy.is_rank_zero:
            callbacks = [cb for cb in callbacks if not getattr(cb, "rank_zero_only", False)]
        trainer = Trainer(
            max_epochs=t.max_epochs,
            max_steps=t.max_steps,
            callbacks=callbacks,
            device=device,
            log_every_n_steps=t.log_every_n_steps,
            accumulate_grad_batches=t.accumulate_grad_batches,
            precision=build_precision(t.precision, device),
            strategy=strategy,
        )
        trainer.fit(exp.task, exp.loader("train"), exp.loader("val"), optimizer=optimizer, scheduler=scheduler, checkpoint=checkpoint)
        metrics = trainer.test(exp.task, exp.loader("test"))
        strategy.teardown()  # from here on rank 0 works alone, on unsharded loaders
        if not strategy.is_rank_zero:
            return RunResult(run_dir=run_dir, metrics=metrics)
        exp.task.to("cpu")
        artifact.save_model(exp.model, run_dir, _model_spec(exp))
        for filename, text in exp.data.artifacts.items():  # what the model needs to be used, e.g. its tokenizer
            atomic_write_text(run_dir / filename, text)
        _save_predictions(exp, run_dir)
        for filename, text in getattr(exp.task, "artifacts", dict)().items():  # what the task kept for the report
            atomic_write_text(run_dir / filename, text)
    _write_run_info(run_dir, exp, device, wall_time_s=time.time() - started, fit_time_s=trainer.state.wall_time_s)
    from deepstrata.report import build_report

    build_report(run_dir)
    return RunResult(run_dir=run_dir, metrics=metrics)


def finetune(
    run_dir: str | Path,
    recipe: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
    *,
    strategy: str = "fine_tuning",
    head_lr: float = 1e-3,
    body_lr: float = 1e-4,
) -> RunResult:
    """Train `recipe` from a finished run's weights with a new head; see `transfer/finetune.py`.

    strategy: "feature_extraction" (frozen body, head at head_lr), "fine_tuning" (body at
    body_lr, head at head_lr) or "gradual_unfreezing" (head first, then the body top-down).
    """
    from deepstrata.transfer.finetune import finetune as _finetune

    return _finetune(run_dir, recipe, overrides, strategy=strategy, head_lr=head_lr, body_lr=body_lr)


def evaluate(run_dir: str | Path, *, split: str = "test") -> RunResult:
    """Rebuild the run's data split and saved model, and recompute the split's metrics."""
    run_dir = _check_run_dir(run_dir)
    if split not in ("train", "val", "test"):
        raise UserError(f"unknown split '{split}'; choose train, val or test")
    recipe = load_recipe(run_dir / CONFIG)
    with torch_threads(recipe.trainer.num_threads), _deterministic(recipe.trainer.deterministic):
        exp = build_experiment(recipe)
        _check_same_split(run_dir, exp.data.split)
        model, _ = artifact.load_model(run_dir)
        exp.task.model = model
        loader = exp.loader(split)
        if loader is None:
            raise UserError(f"run '{run_dir}' has no {split} split (data.val_fraction is 0)")
        trainer = Trainer(device="cpu")
        metrics = trainer.test(exp.task, loader) if split == "test" else _eval_split(trainer, exp, loader, split)
    return RunResult(run_dir=run_dir, metrics=metrics)


def _eval_split(trainer: Trainer, exp: Experiment, loader: Any, split: str) -> dict[str, float]:
    trainer.task = exp.task
    return trainer._evaluate(loader, split)


def load(run_dir: str | Path) -> Predictor:
    """A finished run's model with its preprocessing, ready to predict."""
    run_dir = _check_run_dir(run_dir)
    model, spec = artifact.load_model(run_dir)
    return Predictor(model, spec)


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Any registered component by name: `create("model", "small_cnn", num_classes=10)`."""
    from deepstrata.registry import create as _create

    return _create(kind, name, **kwargs)




# ------------------------------------------------------------------ internals


def _callbacks(exp: Experiment, run_dir: Path, scheduler: Any = None) -> list[Callback]:
    """The default callbacks every run has, those the trainer section asks for, the recipe's own,
    and the schedule when it listens to validation (reduce_on_plateau)."""
    t = exp.recipe.trainer
    checkpoint = _named("checkpoint", monitor=t.monitor, mode=t.monitor_mode, save_top_k=t.save_top_k, every_n_steps=t.checkpoint_every_n_steps)
    defaults = [
        build_component("callback", _named("metrics_logger"), "callbacks", run_dir=str(run_dir)),
        build_component("callback", checkpoint, "callbacks", run_dir=str(run_dir)),
        build_component("callback", _named("nonfinite_guard", policy=t.nonfinite), "callbacks"),
    ]
    if t.gradient_clip_norm is not None or t.gradient_clip_value is not None:
        clip = _named("grad_clip", max_norm=t.gradient_clip_norm, value=t.gradient_clip_value)
        defaults.append(build_component("callback", clip, "callbacks"))
    defaults.append(build_component("callback", _named("progress", mode=t.progress), "callbacks"))
    own = [
        build_component("callback", spec, f"callbacks.{i}", run_dir=str(run_dir), monitor=t.monitor, mode=t.monitor_mode)
        for i, spec in enumerate(exp.recipe.callbacks)
    ]
    schedule = [scheduler] if isinstance(scheduler, Callback) else []
    return defaults + own + schedule


def _named(name: str, **kwargs: Any) -> Any:
    from deepstrata.config import ComponentSpec

    return ComponentSpec(name=name, **kwargs)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _model_spec(exp: Experiment) -> dict[str, Any]:
    return {
        "architecture": exp.recipe.model.name,
        "kwargs": exp.recipe.model.kwargs,
        "task": exp.recipe.task,
        "class_names": exp.data.class_names,
        "input_spec": exp.data.input_spec,
        "dataset": exp.data.name,
        "recipe": exp.recipe.name,
    }


@torch.no_grad()
def _save_predictions(exp: Experiment, run_dir: Path) -> None:
    """Test-set predictions for the report: labels, predictions, probabilities, a few wrong inputs."""
    if exp.recipe.task != "classification":
        return
    exp.task.eval()
    ys, preds, probs, wrong_x, wrong_meta = [], [], [], [], []
    for x, y in exp.loader("test"):
        p = torch.softmax(exp.task.model(x), dim=1)
        yhat = p.argmax(dim=1)
        ys.append(y.numpy())
        preds.append(yhat.numpy())
        probs.append(p.numpy())
        miss = (yhat != y).nonzero().flatten()
        for i in miss.tolist():
            if len(wrong_x) < 36:
                wrong_x.append(x[i].numpy())
                wrong_meta.append((int(y[i]), int(yhat[i])))
    np.savez_compressed(
        run_dir / PREDICTIONS,
        y_true=np.concatenate(ys),
        y_pred=np.concatenate(preds),
        probs=np.concatenate(probs),
        wrong_x=np.stack(wrong_x) if wrong_x else np.zeros((0, *exp.data.input_shape), np.float32),
        wrong_true=np.array([m[0] for m in wrong_meta], dtype=np.int64),
        wrong_pred=np.array([m[1] for m in wrong_meta], dtype=np.int64),
    )


def _write_run_info(run_dir: Path, exp: Experiment, device: torch.device, *, wall_time_s: float, fit_time_s: float) -> None:
    from deepstrata import __version__

    info = {
        "recipe": exp.recipe.name,
        "seed": exp.recipe.seed,
        "split": exp.data.split,
        "class_names": exp.data.class_names,
        "parameters": sum(p.numel() for p in exp.model.parameters()),
        "wall_time_s": round(wall_time_s, 3),
        "fit_time_s": round(fit_time_s, 3),
        "environment": {
            "deepstrata": __version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
        },
    }
    atomic_write_text(run_dir / RUN_INFO, json.dumps(info, indent=2) + "\n")


def _check_same_split(run_dir: Path, rebuilt: dict[str, Any]) -> None:
    """Refuse to evaluate on a split that is not the one the run was tested on.

    The split is rebuilt from the seed; if the data files changed since training (a different
    MNIST folder, an edited CSV), the same seed gives other rows and the metrics would silently
    describe other data. run.json records hashes of the split's indices and labels.
    """
    info_path = run_dir / RUN_INFO
    if not info_path.is_file():
        return
    recorded = json.loads(info_path.read_text(encoding="utf-8")).get("split", {})
    for key in ("test_indices_sha256", "test_labels_sha256", "val_indices_sha256"):
        if key in recorded and key in rebuilt and recorded[key] != rebuilt[key]:
            raise UserError(
                f"the {key.split('_')[0]} split rebuilt for '{run_dir}' differs from the one the run used "
                f"({key}: {rebuilt[key]} != {recorded[key]}); the data changed since training. "
                "Point data.root/data.path at the original files, or train again"
            )


def _check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"'{run_dir}' is not a run directory (no {CONFIG}); runs live under runs/<recipe>/<timestamp>/")
    return run_dir


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))


__all__ = ["Predictor", "RunResult", "create", "evaluate", "finetune", "load", "train", "METRICS", "REPORT"]
