"""The training loop: fit, validate, test, with hook points and nothing optional inside.

Problem: training code mixes the essential loop (forward, backward, step) with a dozen
optional features, and every new feature edits the loop.
Idea: the loop below is the whole algorithm of mini-batch gradient descent with gradient
accumulation; everything else (logging, checkpoints, clipping, the non-finite guard, EMA,
early stopping, progress) hooks in as a `Callback` and communicates through `trainer.state`.
Number formats are a `Precision` component and multi-process training a strategy
(`train/strategy.py`). `fit` checks the setup on one batch before the first step so a
mistake fails in a second, not after an epoch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from deepstrata.errors import UserError
from deepstrata.tasks.base import StepOutput, Task
from deepstrata.training.callbacks.base import Callback
from deepstrata.training.precision import Precision
from deepstrata.training.state import TrainerState
from deepstrata.training.strategy import SingleProcess


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"trainer.device '{device}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device is 'cuda' but no CUDA GPU is visible; use trainer.device=cpu or auto")
    return dev


class Trainer:
    """Runs the loop; `callbacks` add everything else."""

    def __init__(
        self,
        *,
        max_epochs: int = 10,
        max_steps: int | None = None,
        callbacks: Sequence[Callback] = (),
        device: str | torch.device = "cpu",
        log_every_n_steps: int = 1,
        accumulate_grad_batches: int = 1,
        precision: Precision | None = None,
        strategy: SingleProcess | None = None,
    ):
        if accumulate_grad_batches < 1:
            raise UserError(f"accumulate_grad_batches must be >= 1, got {accumulate_grad_batches}")
        self.max_epochs = max_epochs
        self.max_steps = max_steps
        # Callbacks that snapshot the state (checkpoints) run after all others, so a snapshot
        # taken at a step includes every other callback's update for that step (EMA, patience).
        self.callbacks = sorted(callbacks, key=lambda cb: bool(getattr(cb, "runs_last", False)))
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.log_every_n_steps = log_every_n_steps
        self.accumulate_grad_batches = accumulate_grad_batches
        self.precision = precision or Precision()
        self.strategy = strategy or SingleProcess()
        self.state = TrainerState()
        self.task: Task | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.train_loader: DataLoader | None = None
        self.val_loader: DataLoader | None = None
        self.output: StepOutput | None = None  # the latest training step's output
        self.interrupted = 0  # the signal number once SIGINT/SIGTERM asked to stop (training/interrupt.py)
        self._validation_names: list[str] | None = None

    # ---------------------------------------------------------------- the loop
    def fit(
        self,
        task: Task,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        *,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> TrainerState:
        """Train; `checkpoint` (from `train.checkpoint.load_checkpoint`) resumes exactly where it was written."""
        self.task, self.optimizer, self.scheduler = task.to(self.device), optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        s = self.state
        s.stage = "fit"
        self._check_setup(task, train_loader)
        self.strategy.setup(task)
        optimizer, train_loader = self.strategy.prepare_training(self, optimizer, train_loader)
        self.optimizer, self.train_loader = optimizer, train_loader
        if checkpoint is not None:
            from deepstrata.training.checkpoint import restore

            restore(self, checkpoint)
        start = time.perf_counter() - s.wall_time_s
        self._hook("on_fit_start")
        try:
            while s.epoch < self.max_epochs and not s.should_stop:
                self._train_epoch(task, train_loader, optimizer, scheduler)
                if val_loader is not None:
                    self._evaluate(val_loader, "val")
                s.epoch += 1
                s.batch_idx = 0
                s.wall_time_s = time.perf_counter() - start
                self.log({"scope": "epoch", **s.train_metrics, **s.val_metrics, "time/epoch_end_s": s.wall_time_s})
        except BaseException as error:
            self._hook("on_exception", error)
            raise
        s.wall_time_s = time.perf_counter() - start
        self._hook("on_fit_end")
        s.stage = "idle"
        return s

    def _train_epoch(self, task: Task, loader: DataLoader, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        s, k = self.state, self.accumulate_grad_batches
        try:
            num_batches = len(loader)
        except TypeError:  # an iterable-style dataset: its last partial accumulation is dropped
            num_batches = float("inf")
        self._hook("on_train_epoch_start")
        task.train()
        ran = 0
        for batch in self._batches(loader):
            batch = self.to_device(batch)
            self._hook("on_train_batch_start", batch)
            with self.precision.autocast():
                out = self.output = self.strategy.training_step(task, batch)
            self._hook("on_before_backward", out)
            self.precision.backward(out.loss / k)  # k micro-batches add up to one batch's mean gradient
            s.batch_idx += 1
            ran += 1
            if s.batch_idx % k and s.batch_idx < num_batches:
                continue  # keep accumulating
            self.precision.unscale(optimizer)
            self._hook("on_after_backward")
            self._hook("on_before_optimizer_step")
            if not s.skip_step:
                self.precision.step(optimizer)
            s.skip_step = False
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            s.global_step += 1
            if s.global_step % self.log_every_n_steps == 0:
                self._log_step(out)
            self._hook("on_train_batch_end", out)
            if self.max_steps is not None and s.global_step >= self.max_steps:
                s.should_stop, s.stop_reason = True, f"reached max_steps={self.max_steps}"
            self._stop_if_interrupted()  # at the step boundary: the state is whole
            if s.should_stop:
                break
        if ran:  # an epoch resumed at its very end ran nothing and keeps its restored metrics
            s.train_metrics = self.strategy.reduce(task.compute_metrics("train"))
        # What the strategy adds (DP-SGD's epsilon; a federated server, which trains no batch itself,
        # its clients' loss) comes even from an epoch that ran no batch here.
        s.train_metrics = {**s.train_metrics, **self.strategy.epoch_metrics()}
        self._hook("on_train_epoch_end")

    def _batches(self, loader: DataLoader) -> Iterable[Any]:
        """This epoch's batches from `state.batch_idx` on (a resumed epoch starts mid-way)."""
        s = self.state
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_position"):
            sampler.set_position(s.epoch, s.batch_idx * (loader.batch_size or 1))
            return loader
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(s.epoch)
        return itertools.islice(loader, s.batch_idx, None)

    def validate(self, task: Task, loader: DataLoader) -> dict[str, float]:
        return self.evaluate(task, loader, "val")

    def evaluate(self, task: Task, loader: DataLoader, split: str) -> dict[str, float]:
        """Metrics of `task` over `loader`, named `<split>/<name>` (no step is taken)."""
        self.task = task.to(self.device)
        return self._evaluate(loader, split)

    def test(self, task: Task, loader: DataLoader) -> dict[str, float]:
        self.task = task.to(self.device)
        self.state.stage = "test"
        self._hook("on_test_start")
        metrics = self._evaluate(loader, "test")
        self.state.test_metrics = metrics
        self.log({"scope": "test", **metrics})
        self._hook("on_test_end")
        self.state.stage = "idle"
        return metrics

    @torch.no_grad()
    def _evaluate(self, loader: DataLoader, split: str) -> dict[str, float]:
        task = self.task
        assert task is not None
        if split == "val":
            self._hook("on_validation_start")
        was_training = task.training
        task.eval()
        for batch in loader:
            if split == "val":
                self._stop_if_interrupted()  # a validation pass is abandoned: it is redone on resume
            with self.precision.autocast():
                task.evaluation_step(self.to_device(batch), split)
        task.train(was_training)
        metrics = self.strategy.reduce(task.compute_metrics(split))
        if split == "val":
            self.state.val_metrics = metrics
            self._hook("on_validation_end")
        return metrics

    # ---------------------------------------------------------------- helpers
    def _stop_if_interrupted(self) -> None:
        if self.interrupted:
            from deepstrata.training.interrupt import TrainingInterrupted

            raise TrainingInterrupted(self.interrupted, epoch=self.state.epoch, step=self.state.global_step)

    def log(self, record: dict[str, Any]) -> None:
        """Send one metrics record to every callback (the metrics file, the progress bar, trackers)."""
        record = {"step": self.state.global_step, "epoch": self.state.epoch, **record}
        self._hook("on_log", record)

    def _log_step(self, out: Any) -> None:
        record: dict[str, Any] = {"scope": "step", "train/loss": float(out.loss.detach())}
        if self.optimizer is not None and self.optimizer.param_groups:
            record["train/lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.state.last_step_metrics = {k: v for k, v in record.items() if k != "scope"}
        self.log(record)

    def to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        return batch

    def _hook(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, name)(self, *args)

    @torch.no_grad()
    def validation_metric_names(self) -> list[str]:
        """The names validation will log (`val/loss`, `val/<metric>`, ...), from one validation batch,
        plus those callbacks declare they add (`Callback.adds_validation_metrics`).

        Callbacks that monitor a metric check it in `setup`, so a misspelled `trainer.monitor`
        fails before step 1, not after the first epoch. The probe leaves no trace: the task's
        metrics are reset and every random stream is put back as it was.
        """
        if self._validation_names is None:
            if self.val_loader is None or self.task is None:
                return []
            from deepstrata.training.checkpoint import rng_state, set_rng_state

            saved, was_training = rng_state(), self.task.training
            generator = getattr(self.val_loader, "generator", None)  # an iterator draws its base seed from it
            generator_state = generator.get_state() if generator is not None else None
            self.task.eval()
            try:
                batch = next(iter(self.val_loader))
                with self.precision.autocast():
                    self.task.evaluation_step(self.to_device(batch), "val")
                logged = set(self.task.compute_metrics("val"))  # computing resets them
                added = {name for cb in self.callbacks for name in cb.adds_validation_metrics}
                self._validation_names = sorted(logged | added)
            finally:
                self.task.train(was_training)
                set_rng_state(saved)
                if generator is not None:
                    generator.set_state(generator_state)
        return self._validation_names

    def _check_setup(self, task: Task, loader: Iterable[Any]) -> None:
        """Run the model and loss on one batch, without a step, so setup errors surface now."""
        # Every rank probes the validation names here, together: computing a metric may gather
        # across ranks, and the callbacks that check a monitor run on rank 0 only.
        self.validation_metric_names()
        for cb in self.callbacks:
            cb.setup(self)
        try:
            batch = next(iter(loader))
        except StopIteration:
            raise UserError("the training data loader is empty; check data.batch_size and the dataset size") from None
        was_training = task.training
        task.eval()
        try:
            with torch.no_grad(), self.precision.autocast():
                out = task.shared_step(self.to_device(batch))
        except (ValueError, RuntimeError) as err:
            raise UserError(f"setup check on the first training batch failed: {err}") from err
        finally:
            task.train(was_training)
        if out.loss.dim() != 0:
            raise UserError(f"the loss must be a scalar, got shape {tuple(out.loss.shape)}; check the loss's reduction")
