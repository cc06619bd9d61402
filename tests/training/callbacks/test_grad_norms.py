"""Per-layer gradient norms: they show the vanishing gradients of a deep sigmoid network."""

from __future__ import annotations

import torch
from tests.training.engine_helpers import Recorder, make_data, make_loader
from torch import nn

from deepstrata.losses.cross_entropy import cross_entropy
from deepstrata.tasks.classification import ClassificationTask
from deepstrata.training.callbacks.grad_norms import GradNormLogger
from deepstrata.training.trainer import Trainer


def test_grad_norm_logging_shows_vanishing_gradients_in_a_deep_sigmoid_net() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(10, 10), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(10, 3))
    task = ClassificationTask(model, cross_entropy(), {})
    rec = Recorder()
    trainer = Trainer(max_epochs=1, max_steps=1, callbacks=[GradNormLogger(every_n_steps=1), rec])
    trainer.fit(task, make_loader(make_data(64), 64), optimizer=torch.optim.SGD(task.parameters(), lr=0.0))
    norms = next(r for r in rec.records if r["scope"] == "grad_norm")
    first, last = norms["grad_norm/0.weight"], norms["grad_norm/22.weight"]
    assert first < last * 1e-4  # sigmoid' <= 1/4 per layer: the first layer hardly learns
    assert norms["grad_norm/total"] >= last
