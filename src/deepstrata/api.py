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
from deepstrata.train.callbacks.base import Callback
from deepstrata.train.trainer import Trainer, resolve_device


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
    from deepstrata.train.checkpoint import load_checkpoint
    from deepstrata.train.precision import build_precision
    from deepstrata.train.strategy import build_strategy, local_device

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


class Predictor:
    """A loaded model plus the input preprocessing it was trained with."""

    def __init__(self, model: torch.nn.Module, spec: dict[str, Any]):
        self.model = model.eval()
        self.spec = spec
        self.input_spec = spec.get("input_spec", {})
        self.class_names = spec.get("class_names")
        self.task = spec.get("task", "classification")

    def preprocess(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw inputs (as the dataset stores them, e.g. 0..16 grey levels) -> model inputs (N, *shape)."""
        x = torch.as_tensor(np.asarray(raw), dtype=torch.float32)
        shape = tuple(self.input_spec.get("shape", x.shape[1:]))
        if tuple(x.shape) == shape or x.numel() == int(np.prod(shape)):
            x = x.reshape(1, *shape)
        elif x.numel() % int(np.prod(shape)) == 0:
            x = x.reshape(-1, *shape)
        else:
            raise UserError(f"input of shape {tuple(x.shape)} does not fit the model's input shape {shape}")
        x = x * float(self.input_spec.get("scale", 1.0))
        # mean/std: numbers, or per-feature / per-channel lists (statistics fitted on the training split)
        mean, std = (torch.as_tensor(self.input_spec.get(k, d), dtype=torch.float32) for k, d in (("mean", 0.0), ("std", 1.0)))
        if mean.dim() == 1 and len(shape) > 1:
            mean, std = mean.reshape(-1, *[1] * (len(shape) - 1)), std.reshape(-1, *[1] * (len(shape) - 1))
        x = (x - mean) / std
        norm = self.input_spec.get("normalize")  # a `normalize` transform from the recipe's data.augment
        if norm:
            view = (-1, *[1] * (len(shape) - 1))
            x = (x - torch.tensor(norm["mean"]).reshape(view)) / torch.tensor(norm["std"]).reshape(view)
        return x

    @torch.no_grad()
    def predict(self, raw: np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
        """One dict per input: {"label", "class_name", "probability"} or {"value"}."""
        x = self.preprocess(raw)
        out = self.model(x)
        if self.task != "classification":
            return [{"value": v.tolist()} for v in out]
        probs = torch.softmax(out, dim=1)
        conf, label = probs.max(dim=1)
        names = self.class_names or [str(i) for i in range(probs.shape[1])]
        return [{"label": int(i), "class_name": names[int(i)], "probability": float(p)} for i, p in zip(label, conf)]

    @torch.no_grad()
    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Seq2seq runs on characters: each text -> {"output": decoded text}, with the run's saved vocabulary."""
        from deepstrata.tasks.seq2seq import greedy_decode

        spec = self.input_spec
        vocab = spec.get("vocab")
        if self.task != "seq2seq" or not vocab or spec.get("tokens") != "characters":
            raise UserError(f"text input needs a seq2seq run on characters; this run's task is '{self.task}'")
        index = {c: i for i, c in enumerate(vocab)}
        length, pad = int(spec["max_source_len"]), int(spec["pad_id"])
        rows = []
        for text in texts:
            if not 0 < len(text) <= length:
                raise UserError(f"input '{text}' has {len(text)} characters; this model reads 1 to {length}")
            ids = [index.get(c, int(spec["unk_id"])) for c in text]
            rows.append(ids + [pad] * (length - len(ids)))
        tokens, _ = greedy_decode(
            self.model, torch.tensor(rows), max_len=int(spec["max_target_len"]) - 1, bos_id=int(spec["bos_id"]), eos_id=int(spec["eos_id"]), pad_id=pad
        )
        specials = {pad, int(spec["bos_id"])}
        outputs = []
        for row in tokens.tolist():
            chars = []
            for t in row:
                if t == int(spec["eos_id"]):
                    break
                if t not in specials:
                    chars.append(vocab[t])
            outputs.append({"output": "".join(chars)})
        return outputs

    def predict_files(self, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Predict from .npy arrays or image files (converted to grey, resized to the input size).

        For a seq2seq run on characters each argument is the input text itself ("3 March 1987").
        """
        if self.task == "seq2seq":
            texts = [str(p) for p in paths]
            return [{"input": t, **r} for t, r in zip(texts, self.predict_text(texts))]
        results = []
        for path in paths:
            raw = self.read_input(Path(path))
            for r in self.predict(raw):
                results.append({"input": str(path), **r})
        return results

    def read_input(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise UserError(f"input file '{path}' does not exist")
        if path.suffix == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as err:
                raise UserError(f"{path}: not a plain .npy array ({err})") from None
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"):
            from PIL import Image, UnidentifiedImageError

            shape = self.input_spec.get("shape", [1, 28, 28])
            try:
                img = Image.open(path).convert("L" if shape[0] == 1 else "RGB").resize((shape[-1], shape[-2]))
            except (UnidentifiedImageError, OSError) as err:
                raise UserError(f"{path}: cannot read the image ({err})") from None
            arr = np.asarray(img, dtype=np.float32) / 255.0 * float(self.input_spec.get("raw_max", 255.0))
            return arr if arr.ndim == 2 else arr.transpose(2, 0, 1)
        raise UserError(f"{path}: unsupported input type '{path.suffix}'; give .npy arrays or image files (.png, .jpg)")


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


def _check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"'{run_dir}' is not a run directory (no {CONFIG}); runs live under runs/<recipe>/<timestamp>/")
    return run_dir


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))


__all__ = ["Predictor", "RunResult", "create", "evaluate", "finetune", "load", "train", "METRICS", "REPORT"]
