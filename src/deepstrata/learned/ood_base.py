"""The contract of out-of-distribution scorers: fit on a classifier's training inputs, then score.

Problem: OOD scores come from logits (MSP, energy), from features (Mahalanobis, nearest
neighbours), from perturbed inputs (ODIN) or from stochastic passes (MC dropout); with one
interface per family, a tool that compares them needs a branch per score.
Idea: every scorer is a learned object with the same two calls, `fit(model, inputs, labels)`
on TRAINING inputs of the model's input shape and `score(model, inputs) -> (N,)`, where LARGER
means MORE out-of-distribution. The model is an argument, never stored: what is saved is only
what was learned (class means, a feature bank, a threshold). Fitting also records the score
that `tpr` (95%) of the training inputs stay below (`threshold_`), so `predict` flags inputs as
OOD without ever seeing OOD data.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.learned.base import Example, Learned, check_same_length, check_tensor


class OODScorer(Learned):
    """Base class of OOD scores. Subclasses set `score_name` (the tool's name for the score, e.g.
    "msp") and `order` (its place in tables), implement `_fit(model, x, y)` (may return the
    training scores when they come for free) and `_score(model, x) -> (N,)`, and may override
    `unsupported(model)` to say why a model cannot be scored (no dropout, not a Backbone).

    Common arguments of every member: `tpr` (the share of training inputs under `threshold_`)
    and `batch_size` (inputs per forward pass).

    Fitted attributes (all members): `input_shape_` (list of int, one input's shape),
    `threshold_` (float: the `tpr` quantile of the training scores).
    """

    fit_call: ClassVar[str] = "fit(model, inputs, labels)"
    score_name: ClassVar[str] = ""
    order: ClassVar[int] = 100
    needs_labels: ClassVar[bool] = False
    example_dropout: ClassVar[float] = 0.0  # the dropout rate of the example model

    tpr: float
    batch_size: int

    # ---------------------------------------------------------------- what subclasses write
    def _fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        return None  # nothing to learn beyond the threshold (MSP, energy, ...)

    def _score(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_params(self) -> None:
        """Raise a UserError naming a bad constructor argument (called by fit)."""

    @classmethod
    def unsupported(cls, model: nn.Module) -> str | None:
        """Why `model` cannot be scored this way (one line), or None when it can."""
        return None

    # ---------------------------------------------------------------- the contract
    def fit(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> Self:
        """Learn from training `inputs` (N, *input_shape) (and int `labels` (N,) where the score
        needs classes) what scoring needs, plus `threshold_`; returns self."""
        where = f"{type(self).__name__}.fit"
        if not 0.0 < self.tpr < 1.0:
            raise UserError(f"{type(self).__name__} needs 0 < tpr < 1, got tpr={self.tpr}")
        if self.batch_size < 1:
            raise UserError(f"{type(self).__name__} needs batch_size >= 1, got batch_size={self.batch_size}")
        self._check_params()
        self._check_model(model, where)
        x = _check_inputs(inputs, where=where, shape=None)
        y = None
        if labels is not None or self.needs_labels:
            y = check_tensor(labels, where=where, name="labels", shape="(N,)", ndim=1, dtype="int")
            check_same_length(where, ("inputs", "labels"), x, y)
        reason = self.unsupported(model)
        if reason is not None:
            raise UserError(f"{where}: {reason}")
        was_training = model.training
        model.eval()
        try:
            _probe(model, x, where)
            train_scores = self._fit(model, x, y)
            if train_scores is None:
                train_scores = self._score(model, x)
        finally:
            model.train(was_training)
        self.input_shape_ = list(x.shape[1:])
        self.threshold_ = float(torch.quantile(train_scores.detach().to(torch.float64), self.tpr))
        return self

    def score(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """The OOD score of each input (N,) float32: LARGER = MORE out-of-distribution."""
        self.check_is_fitted()
        where = f"{type(self).__name__}.score"
        self._check_model(model, where)
        x = _check_inputs(inputs, where=where, shape=self.input_shape_)
        was_training = model.training
        model.eval()
        try:
            _probe(model, x, where)
            return self._score(model, x).detach().to("cpu", torch.float32)
        finally:
            model.train(was_training)

    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """True where an input scores above `threshold_` (flagged out-of-distribution): (N,) bool."""
        return self.score(model, inputs) > self.threshold_

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        """A small MLP on three clusters (`example_problem`); refuses non-tensors, integer inputs,
        a non-model and inputs of the wrong shape, in fit and in score."""
        model, x, y = example_problem(generator, dropout=cls.example_dropout)
        return Example(
            fit_args=(model, x, y),
            method="score",
            inputs=(model, x[:20]),
            invalid_fit_args=((model, x.flatten()), (model, x.long()), (model, x.numpy()), ("model", x), (model, x[:, :, :3]), (model, x, y[:-1]), (model, x, y.float())),
            invalid_inputs=((model, x[:5, :, :3]), (model, x[:5].long()), (model, x[0]), ("model", x[:5])),
        )

    @staticmethod
    def _check_model(model: Any, where: str) -> None:
        if not isinstance(model, nn.Module):
            raise UserError(f"{where} expected the classifier (a torch nn.Module) as its first argument, got a {type(model).__name__}")


def _probe(model: nn.Module, x: torch.Tensor, where: str) -> None:
    """One forward on two inputs: a model that cannot take them fails here with one line, not deep in a score."""
    from deepstrata.learned.ood_features import logits_of

    try:
        with torch.no_grad():
            logits_of(model, x[:2], where=where)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{where}: {type(model).__name__} cannot take inputs of shape {tuple(x.shape)} ({first})") from None


def example_problem(generator: torch.Generator, *, dropout: float = 0.0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny seeded classifier and data for the members' `example()`: an MLP (16 -> 12 -> 8 -> 3,
    initialised from `generator`, briefly fitted) on three Gaussian clusters of (1, 4, 4) inputs."""
    from deepstrata.models.mlp import MLP

    n, num_classes = 90, 3
    labels = torch.arange(n) % num_classes
    centres = 2.0 * torch.randn(num_classes, 1, 4, 4, generator=generator)
    inputs = centres[labels] + 0.5 * torch.randn(n, 1, 4, 4, generator=generator)
    with torch.random.fork_rng(devices=[]):  # the global generator is restored afterwards
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        model = MLP(in_features=16, num_classes=num_classes, hidden=(12, 8), dropout=dropout)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(20):  # full-batch steps: a model whose classes mean something
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
    return model.eval(), inputs, labels


def _check_inputs(inputs: Any, *, where: str, shape: list[int] | None) -> torch.Tensor:
    """Float inputs (N, *shape) with at least one dimension per input; the shape as fitted when given."""
    expected = f"(N, {', '.join(map(str, shape))})" if shape else "(N, ...)"
    ndim = len(shape) + 1 if shape else max(getattr(inputs, "ndim", 2), 2)
    x = check_tensor(inputs, where=where, name="inputs", shape=expected, ndim=ndim, dtype="float")
    if shape is not None and list(x.shape[1:]) != list(shape):
        raise UserError(f"{where} expected inputs of shape {expected} (the shape it was fitted on), got shape {tuple(x.shape)}")
    return x
