"""Depth and trainability: which deep networks can be trained, measured layer by layer.

Problem: stacking layers should help, yet deep sigmoid networks with naive initialisation barely
learn, because the backpropagated gradient shrinks by a factor at every layer (vanishing
gradients; Hochreiter 1991, Glorot & Bengio 2010). Idea: sweep depth x activation x init x
{plain, BatchNorm, LayerNorm, residual} on digits with one fixed budget, recording each layer's
gradient norm at initialisation and during training, the final accuracy and any divergence;
the first-to-last gradient ratio and the accuracy show which fixes (He init, normalisation,
skip connections) keep the signal alive.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from deepstrata.labs.deep_mlp import DeepMLP
from deepstrata.labs.digits_data import digits_lab_data


@dataclass
class TrainabilityCell:
    """One configuration's measurements."""

    depth: int
    activation: str
    init: str
    variant: str
    grad_norms_init: list[float]
    grad_norms_during: list[list[float]] = field(default_factory=list)  # at a few points of training
    losses: list[float] = field(default_factory=list)
    test_accuracy: float = 0.0
    diverged: bool = False

    @property
    def first_last_ratio(self) -> float:
        """||grad W_first|| / ||grad W_last hidden|| at init: << 1 means vanishing, >> 1 exploding."""
        g = self.grad_norms_init
        return g[0] / g[-2] if g[-2] > 0 else math.inf

    def to_dict(self) -> dict:
        return {**asdict(self), "first_last_ratio": self.first_last_ratio}


def measure_cell(
    *, depth: int, activation: str, init: str, variant: str, steps: int = 300, batch_size: int = 64, lr: float = 0.05,
    width: int = 64, seed: int = 0, snapshots: int = 4,
) -> TrainabilityCell:
    """Build one DeepMLP, measure per-layer gradients at init on a fixed batch, train with SGD+momentum."""
    data = digits_lab_data(seed)
    torch.manual_seed(seed)
    model = DeepMLP(in_features=64, num_classes=10, depth=depth, width=width, activation=activation, init=init, variant=variant, seed=seed)
    probe_x, probe_y = data.x_train[:256], data.y_train[:256]

    def probe() -> list[float]:
        model.zero_grad()
        F.cross_entropy(model(probe_x), probe_y).backward()
        return model.layer_grad_norms()

    model.train()
    cell = TrainabilityCell(depth, activation, init, variant, grad_norms_init=probe())
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    order = torch.randperm(n, generator=gen)
    pos = 0
    snap_every = max(1, steps // snapshots)
    for step in range(1, steps + 1):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        if not torch.isfinite(loss):
            cell.diverged = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        cell.losses.append(loss.item())
        if step % snap_every == 0:
            cell.grad_norms_during.append(probe())
    model.eval()
    with torch.no_grad():
        logits = model(data.x_test)
        cell.test_accuracy = float((logits.argmax(1) == data.y_test).float().mean()) if torch.isfinite(logits).all() else 0.0
    return cell


def sweep(
    *, depths: tuple[int, ...] = (2, 5, 10, 20, 50), activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "gelu"),
    inits: tuple[str, ...] = ("naive", "xavier", "he"), variants: tuple[str, ...] = ("plain", "batch", "layer", "residual"),
    steps: int = 300, seed: int = 0,
) -> list[TrainabilityCell]:
    """Every combination, one fixed budget of `steps` SGD steps each."""
    return [
        measure_cell(depth=d, activation=a, init=i, variant=v, steps=steps, seed=seed)
        for d, a, i, v in itertools.product(depths, activations, inits, variants)
    ]
