"""The scratch MLP against PyTorch on scikit-learn digits, from the same initial weights.

Problem: a from-scratch engine is only convincing if it does what the real library does, step
for step. Idea: train the scratch MLP and a torch MLP holding a copy of the same initial weights
with the same minibatch order and the same SGD-with-momentum rule; the loss curves must overlay
and both must reach the same test accuracy (Rumelhart et al. 1986; the comparison is the test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepstrata.scratch.nn import MLP, SGD
from deepstrata.scratch.tensor import Tensor, softmax_cross_entropy


@dataclass
class CurveResult:
    """Per-epoch training loss and final test accuracy of one implementation."""

    name: str
    losses: list[float] = field(default_factory=list)
    test_accuracy: float = 0.0


def digits_split(*, seed: int = 0, test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits pixels scaled to [0, 1], flattened to (N, 64); a stratified train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data / 16.0
    return tuple(train_test_split(x, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target))  # type: ignore[return-value]


def _batches(n: int, batch_size: int, epochs: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [np.array_split(rng.permutation(n), max(1, n // batch_size)) for _ in range(epochs)]


def train_scratch_and_torch(
    *, hidden: tuple[int, ...] = (64,), epochs: int = 30, batch_size: int = 32, lr: float = 0.1, momentum: float = 0.9, seed: int = 0
) -> tuple[CurveResult, CurveResult]:
    """Train the scratch MLP and an identical torch MLP in lock step; return both curves."""
    import torch

    x_tr, x_te, y_tr, y_te = digits_split(seed=seed)
    sizes = (x_tr.shape[1], *hidden, 10)
    scratch = MLP(sizes, activation="relu", seed=seed)
    layers: list[torch.nn.Module] = []
    for i, lin in enumerate(scratch.layers):
        t = torch.nn.Linear(lin.weight.shape[0], lin.weight.shape[1]).double()
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(lin.weight.data.T.copy()))  # torch stores (out, in)
            t.bias.copy_(torch.from_numpy(lin.bias.data.copy()))
        layers.append(t)
        if i < len(scratch.layers) - 1:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt_s = SGD(scratch.parameters(), lr=lr, momentum=momentum)
    opt_t = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    res_s, res_t = CurveResult("scratch (NumPy)"), CurveResult("PyTorch")
    xt_tr, yt_tr = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    for epoch_batches in _batches(len(x_tr), batch_size, epochs, seed):
        tot_s = tot_t = 0.0
        for idx in epoch_batches:
            loss = softmax_cross_entropy(scratch(Tensor(x_tr[idx])), y_tr[idx])
            opt_s.zero_grad()
            loss.backward()
            opt_s.step()
            tot_s += float(loss.data) * len(idx)
            loss_t = torch.nn.functional.cross_entropy(net(xt_tr[idx]), yt_tr[idx])
            opt_t.zero_grad()
            loss_t.backward()
            opt_t.step()
            tot_t += loss_t.item() * len(idx)
        res_s.losses.append(tot_s / len(x_tr))
        res_t.losses.append(tot_t / len(x_tr))
    res_s.test_accuracy = float((scratch(Tensor(x_te)).data.argmax(1) == y_te).mean())
    with torch.no_grad():
        res_t.test_accuracy = float((net(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    return res_s, res_t
