"""Shadow models: the run's recipe trained again, on other data, to see how a model behaves on
examples it never saw.

Problem: whether a loss of 0.02 on an example betrays membership depends on the example: an
easy digit has that loss under any model, a mislabelled one only under a model that memorised
it. An attack that judges each example against how models trained *without* it treat it
(Carlini et al. 2022, LiRA) needs such models, trained the way the target was.
Idea: build the run's experiment from its recipe, swap the training split for a given dataset
(rows disjoint from everything being audited), and fit it in-process with the recipe's model,
loss, optimizer, schedule, epochs and strategy (DP-SGD included), each shadow with its own
seed. Nothing is written to disk. Differences from the target's training, stated so no one
assumes otherwise: no validation split (the last weights are used, whatever
`trainer.test_weights` says) and none of the recipe's extra callbacks (EMA, early stopping).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import TYPE_CHECKING

from deepstrata.errors import UserError
from deepstrata.run.run import Run

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from torch.utils.data import Dataset


def stacked(dataset: Dataset, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of `rows` of a dataset whose items are (tensor, label), stacked."""
    import torch

    items = [dataset[i] for i in rows]
    if not items or not all(isinstance(x, torch.Tensor) for x, _ in items):
        raise UserError("shadow models need examples held as tensors (images, tables); this run's data is of another kind")
    return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def train_shadow(run: Run, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> nn.Module:
    """The run's recipe trained from scratch on (x, y) with `seed`; returns the model in eval mode."""
    import torch
    from torch.utils.data import TensorDataset

    from deepstrata.experiment import build_experiment
    from deepstrata.training.callbacks.base import Callback
    from deepstrata.training.precision import build_precision
    from deepstrata.training.strategy import build_strategy
    from deepstrata.training.trainer import Trainer

    recipe = run.recipe.model_copy(update={"seed": seed})
    t = recipe.trainer
    exp = build_experiment(recipe)
    exp.data = dataclasses.replace(exp.data, train=TensorDataset(x, y), val=None)
    device = torch.device("cpu")
    strategy = build_strategy(t.strategy, device)
    quiet = io.StringIO()  # the strategy's log lines (DP-SGD's epsilon) belong to the target run, not to each shadow
    with contextlib.redirect_stderr(quiet):
        strategy.prepare_model(exp.model)
        optimizer = exp.build_optimizer()
        scheduler = exp.build_scheduler(optimizer)
        trainer = Trainer(
            max_epochs=t.max_epochs, max_steps=t.max_steps, device=device,
            callbacks=[scheduler] if isinstance(scheduler, Callback) else [],
            accumulate_grad_batches=t.accumulate_grad_batches, precision=build_precision(t.precision, device), strategy=strategy,
        )
        trainer.fit(exp.task, exp.loader("train", device=device), None, optimizer=optimizer, scheduler=scheduler)
    return exp.model.eval()
