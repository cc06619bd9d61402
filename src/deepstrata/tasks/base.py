"""A task turns a batch into a loss and metric updates, so the Trainer needs to know neither.

Problem: a training loop that knows about labels, logits and accuracy cannot train an
autoencoder or a language model without growing `if` branches.
Idea: the loop only asks the task for `training_step(batch) -> StepOutput(loss, ...)` and
`evaluation_step(batch)`; the task owns the model, the loss and one set of metrics per split
(`train`, `val`, `test`), named `<split>/<metric>` when computed. (Lightning's
LightningModule, reduced to what a recipe-driven loop needs.)

The task also owns what a finished run does with its model, so the Predictor, the report, the
tools and a server call the task instead of testing the task's name: `predict` (raw outputs),
`predict_rows` (readable rows: class names, values, text), `save_test_predictions` (the dump
the report reads) and `for_inference` (the task around a loaded model, without its data).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Quality:
    """How a run of a task is judged: one metric, its direction, and what it has to beat.

    `metric` is logged as `<split>/<metric>`. `baselines` are metrics the task logs beside it on
    the same split (a bigram's bits per character, persistence's MAE); `classical` compares with
    the scikit-learn models of `strata baseline` (baselines.json) and `majority_class` with always
    predicting the most frequent test class. A value at `fails_at` (no sequence exactly right)
    fails whatever the baselines say; `good_at` judges the value alone when nothing else can.
    """

    metric: str
    higher_is_better: bool = True
    baselines: tuple[str, ...] = ()
    classical: bool = False
    majority_class: bool = False
    fails_at: float | None = None
    good_at: float | None = None


@dataclass
class StepOutput:
    """What one step produced. loss: scalar tensor; preds/target: for metrics and reports."""

    loss: torch.Tensor
    batch_size: int
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class Task(nn.Module):
    """Holds the model, the loss and per-split metrics; subclasses define the steps."""

    kind = "task"
    # What the report's diagnosis judges the model by (None: the task names no quality metric).
    quality: Quality | None = None
    # Whether train/validation loss curves speak to under- or overfitting at all; False where
    # the loss is a game between players (a GAN) or an objective with no baseline to read it by.
    curves_show_fit = True
    # True when StepOutput.batch_size counts input samples, so samples/s means something.
    counts_samples = True

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any]):
        super().__init__()
        self.model = model
        self.loss_fn = loss
        # One independent copy of every metric per split, so validation never mixes with training.
        # (ModuleDict keys cannot be "train": that name is nn.Module.train.)
        self._metrics = nn.ModuleDict(
            {f"{split}_split": nn.ModuleDict({name: _copy_metric(m) for name, m in metrics.items()}) for split in SPLITS}
        )
        self._loss_sum: dict[str, float] = {s: 0.0 for s in SPLITS}
        self._loss_count: dict[str, int] = {s: 0 for s in SPLITS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def shared_step(self, batch: Any) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch: Any) -> StepOutput:
        out = self.shared_step(batch)
        self.update_metrics("train", out)
        return out

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        out = self.shared_step(batch)
        self.update_metrics(split, out)
        return out

    def split_metrics(self, split: str) -> nn.ModuleDict:
        """The metrics of one split ("train", "val" or "test"), by name."""
        return self._metrics[f"{split}_split"]

    def update_metrics(self, split: str, out: StepOutput) -> None:
        self._loss_sum[split] += float(out.loss.detach()) * out.batch_size
        self._loss_count[split] += out.batch_size
        if out.preds is not None:
            for metric in self.split_metrics(split).values():
                metric.update(out.preds.detach(), out.target)

    def compute_metrics(self, split: str) -> dict[str, float]:
        """`{"<split>/loss": ..., "<split>/<metric>": ...}` over the steps since the last reset; then reset."""
        result: dict[str, float] = {}
        if self._loss_count[split]:
            result[f"{split}/loss"] = self._loss_sum[split] / self._loss_count[split]
        for name, metric in self.split_metrics(split).items():
            if getattr(metric, "update_count", 1):
                result[f"{split}/{name}"] = float(metric.compute())
            metric.reset()
        self._loss_sum[split], self._loss_count[split] = 0.0, 0
        return result

    # ---------------------------------------------------------------- a finished run's model
    # Inputs a person gives at prediction time: "arrays" (tensors/files), "text" (strings), or
    # "none" (the model samples instead of predicting; `predict_hint` says what to do).
    reads = "arrays"
    predict_hint = ""

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Mapping[str, Any]) -> Task:
        """This task around a loaded model, for prediction only: no loss, no metrics, no data.

        `spec` is the run's model.json (input spec, class names); tasks that need more than
        the model to predict (a vocabulary) read it from there.
        """
        return cls(model, nn.Identity(), {})

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs for a batch of model inputs: `{"value": (N, ...)}` unless a task says more."""
        return {"value": self.model(x)}

    def predict_rows(self, x: torch.Tensor, *, class_names: Sequence[str] | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """One readable dict per input: what `strata predict` prints and a server returns."""
        if self.reads != "arrays":
            raise UserError(self.predict_hint or f"a {type(self).__name__} run does not predict from arrays")
        out = self.predict(x)
        return [{"value": v.tolist()} for v in out["value"]]

    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Readable rows for text inputs (tasks whose `reads` is "text")."""
        raise UserError(f"this run's task ({type(self).__name__}) reads arrays, not text; give .npy arrays or image files")

    def save_test_predictions(self, loader: Any, path: Path) -> bool:
        """Write the test-set dump the report reads (`test_predictions.npz`); False when the task keeps none."""
        return False

    # What tools feed the model (profiling, export): `model(*task.model_inputs(batch))`.
    def training_only_modules(self) -> list[nn.Module]:
        """Modules the task trains beside the model but the run does not save (a FitNets regressor); the optimizer steps them too."""
        return []

    def model_inputs(self, batch: Any) -> tuple[Any, ...]:
        """The positional arguments of `model(...)` for a loader batch; by default its first element."""
        return (batch[0],) if isinstance(batch, (list, tuple)) else (batch,)

    def repeat_inputs(self, inputs: tuple[Any, ...], n: int) -> tuple[Any, ...]:
        """`model_inputs` for exactly n samples, made by tiling a real batch's rows (a sample is one row).

        Every tensor argument is indexed with the same rows 0, 1, ..., so paired inputs (a
        source and its target prefix, images and their labels) stay paired.
        """
        rows = next((a.shape[0] for a in inputs if isinstance(a, torch.Tensor) and a.dim() > 0), None)
        if rows is None:
            raise ValueError(f"{type(self).__name__}.repeat_inputs: no tensor argument with a batch dimension in the model inputs")
        index = torch.arange(n) % rows
        return tuple(a[index.to(a.device)] if isinstance(a, torch.Tensor) and a.dim() > 0 else a for a in inputs)


def task_class(name: str) -> type[Task]:
    """The Task subclass the registered task `name` builds (its factory's return annotation)."""
    from deepstrata.registry import registry

    factory = registry("task").get(name)
    cls = inspect.signature(factory).return_annotation
    if isinstance(cls, str):
        cls = getattr(inspect.getmodule(factory), cls, None)
    if not (inspect.isclass(cls) and issubclass(cls, Task)):
        raise TypeError(f"task factory '{name}' must annotate its return type with its Task subclass")
    return cls


def _copy_metric(metric: Any) -> Any:
    clone = getattr(metric, "clone", None)
    return clone() if clone is not None else metric
