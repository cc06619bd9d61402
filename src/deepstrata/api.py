"""The Python API: what the CLI calls, and what a notebook user calls directly.

Problem: a toolkit usable only from a CLI cannot be scripted, and one usable only from
Python cannot be driven from a shell; two code paths drift apart.
Idea: the CLI is a thin layer over a few functions: `train` (a recipe file, dict or Recipe),
`open_run` (a finished run directory -> a `Run`), `evaluate` and `load` (through the Run),
`apply` (a registered tool on a run) and `create` (any registered component by name).
"""

from __future__ import annotations

import contextlib
import sys
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepstrata.config import Recipe, load_recipe
from deepstrata.errors import UserError
from deepstrata.predictor import Predictor
from deepstrata.run.run import Run
from deepstrata.run.run_dir import CONFIG, METRICS, PREDICTIONS, REPORT
from deepstrata.training.callbacks.base import Callback


@dataclass
class RunResult:
    """What `train`, `evaluate` and the tools return: where the run lives and its metrics."""

    run_dir: Path
    metrics: dict[str, float]

    def to_json(self) -> str:
        return json.dumps({"run_dir": str(self.run_dir), "metrics": self.metrics})


def open_run(run_dir: str | Path) -> Run:
    """A finished run directory as a `Run`: recipe, model, split, history, tool results, lineage."""
    return Run.open(run_dir)


def train(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    overrides: Sequence[str] = (),
    *,
    extra_callbacks: Sequence[Callback] = (),
    resume: str | Path | None = None,
) -> RunResult:
    """Train and test a recipe; write the run directory; return its test metrics.

    `resume=RUN_DIR` continues that run from its checkpoints/last.pt, mid-epoch if it was
    written mid-epoch. The recipe is the run's config.yaml; `overrides` may change the trainer
    section and the callbacks (they are written back to config.yaml and listed in run.json's
    `resumes`); a finished run is continued only when they extend it (more epochs).
    Under `torchrun` (trainer.strategy auto/ddp) every rank trains; only rank 0 writes.
    SIGINT/SIGTERM stop at the next step boundary with a checkpoint and raise
    `TrainingInterrupted` (exit code 130/143 on the CLI), naming the command that resumes.

    >>> result = deepstrata.train("recipes/digits_cnn.yaml", ["trainer.max_epochs=2"])
    >>> result.metrics["test/accuracy"]
    """
    import torch

    from deepstrata.experiment import build_experiment
    from deepstrata.run import artifact
    from deepstrata.run.atomic import atomic_write_text
    from deepstrata.run.record import model_spec, write_run_info
    from deepstrata.run.resume import resume_entry, resume_recipe
    from deepstrata.run.run import check_same_split
    from deepstrata.run.run_dir import new_run_dir
    from deepstrata.training.checkpoint import load_checkpoint
    from deepstrata.training.default_callbacks import default_callbacks
    from deepstrata.training.environment import deterministic, torch_threads
    from deepstrata.training.interrupt import TrainingInterrupted, interruptible
    from deepstrata.training.precision import build_precision
    from deepstrata.training.startup import Marks
    from deepstrata.training.strategy import build_strategy, local_device
    from deepstrata.training.test_weights import select_test_weights
    from deepstrata.training.threads import use_threads
    from deepstrata.training.trainer import Trainer, resolve_device

    startup = Marks()  # seconds from the process's start to the fit and to the test metrics
    checkpoint, resumes = None, []
    if resume is not None:
        previous = Run.open(resume)
        resume = previous.path
        checkpoint = load_checkpoint(resume / "checkpoints" / "last.pt")
        recipe = resume_recipe(previous, overrides, checkpoint)
        resumes = [*previous.info.get("resumes", []), resume_entry(previous, overrides, checkpoint)]
    else:
        recipe = load_recipe(recipe, overrides)
    started = time.time()
    t = recipe.trainer
    with torch_threads(None), deterministic(t.deterministic):  # the caller's thread count comes back afterwards
        device = local_device(resolve_device(t.device))
        strategy = build_strategy(t.strategy, device)  # joins the process group under torchrun
        exp = build_experiment(recipe)  # data errors surface here, before the run dir exists
        threads = use_threads(t.num_threads, exp, device=device, previous=checkpoint.get("threads") if checkpoint else None)
        if strategy.is_rank_zero and t.progress != "off":
            print(threads.describe(), file=sys.stderr, flush=True)
        strategy.prepare_model(exp.model)
        optimizer = exp.build_optimizer()
        scheduler = exp.build_scheduler(optimizer)
        if resume is not None:
            run_dir = resume
            check_same_split(run_dir, previous.info.get("split", {}), exp.data.split)
            if strategy.is_rank_zero:  # the config a resumed run trains under, overrides included
                atomic_write_text(run_dir / CONFIG, exp.recipe.to_yaml())
        else:
            run_dir = strategy.broadcast(new_run_dir(recipe.output_dir, recipe.name) if strategy.is_rank_zero else None)
            if strategy.is_rank_zero:
                atomic_write_text(run_dir / CONFIG, exp.recipe.to_yaml())
        callbacks = default_callbacks(exp.recipe, run_dir, scheduler) + list(extra_callbacks)
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
        startup.mark("fit")
        try:
            with interruptible(trainer):
                trainer.fit(exp.task, exp.loader("train", device=device), exp.loader("val", device=device), optimizer=optimizer, scheduler=scheduler, checkpoint=checkpoint)
        except UserError:
            # The setup check (shapes, loss, a misspelled trainer.monitor) failed before step 1: the
            # directory this call just created holds nothing but its config; leave no half-written run.
            if resume is None and strategy.is_rank_zero and trainer.state.global_step == 0:
                shutil.rmtree(run_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    run_dir.parent.rmdir()  # the recipe's folder too, when this run was its only one
            raise
        except TrainingInterrupted as stop:
            if strategy.is_rank_zero:
                at = {"epoch": stop.epoch, "step": stop.step, "signal": stop.signum}
                write_run_info(run_dir, exp, device, wall_time_s=time.time() - started, fit_time_s=trainer.state.wall_time_s,
                               status="interrupted", interrupted_at=at, resumes=resumes, threads=threads.as_dict(),
                               **_strategy_record(strategy))
            raise stop.in_run(run_dir) from None
        # trainer.test_weights: the best validated epoch's weights (best.safetensors) or the last ones.
        epochs = strategy.broadcast(Run(run_dir).history if strategy.is_rank_zero else None)
        tested = select_test_weights(exp.model, run_dir, t, epochs)
        metrics = trainer.test(exp.task, exp.loader("test", device=device))
        startup.mark("test")
        strategy.teardown()  # from here on rank 0 works alone, on unsharded loaders
        if not strategy.is_rank_zero:
            return RunResult(run_dir=run_dir, metrics=metrics)
        exp.task.to("cpu")
        artifact.save_model(exp.model, run_dir, strategy.saved_model_spec(model_spec(exp)))
        for filename, text in exp.data.artifacts.items():  # what the model needs to be used, e.g. its tokenizer
            atomic_write_text(run_dir / filename, text)
        with torch.no_grad():
            exp.task.save_test_predictions(exp.loader("test"), run_dir / PREDICTIONS)  # the task's dump for the report
        for filename, text in getattr(exp.task, "artifacts", dict)().items():  # what the task kept for the report
            atomic_write_text(run_dir / filename, text)
    write_run_info(
        run_dir, exp, device, wall_time_s=time.time() - started, fit_time_s=trainer.state.wall_time_s,
        tested_weights=tested, threads=threads.as_dict(), timing=startup.as_dict(), **({"resumes": resumes} if resumes else {}),
        **_strategy_record(strategy),
    )
    from deepstrata.report import build_report

    build_report(run_dir)
    return RunResult(run_dir=run_dir, metrics=metrics)


def _strategy_record(strategy: Any) -> dict[str, Any]:
    """run.json's `strategy` entry, for a strategy that has something to record (dp_sgd: its epsilon)."""
    record = strategy.record()
    return {"strategy": record} if record else {}


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
    run = Run.open(run_dir)
    return RunResult(run_dir=run.path, metrics=run.evaluate(split))


def load(run_dir: str | Path) -> Predictor:
    """A finished run's model with its preprocessing, ready to predict."""
    return Run.open(run_dir).predictor()


def apply(tool: str, run_dir: str | Path | Run, /, **kwargs: Any) -> Any:
    """Run the registered tool `tool` on a finished run: `apply("profile", "runs/digits_cnn/<time>")`."""
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    return run.apply(tool, **kwargs)


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Any registered component by name: `create("model", "small_cnn", num_classes=10)`."""
    from deepstrata.registry import create as _create

    return _create(kind, name, **kwargs)


__all__ = ["Predictor", "Run", "RunResult", "apply", "create", "evaluate", "finetune", "load", "open_run", "train", "CONFIG", "METRICS", "REPORT"]
