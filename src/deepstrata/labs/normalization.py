"""Normalisation and batch size: why LayerNorm and GroupNorm exist.

Problem: BatchNorm normalises with the mean and variance of the current mini-batch, so with tiny
batches its statistics are noisy during training and differ from the running averages used at
test time, and accuracy drops (Ioffe & Szegedy 2015; Wu & He 2018, "Group Normalization").
Idea: train the same CNN (`small_cnn`) with BatchNorm, LayerNorm, GroupNorm and no normalisation
at several batch sizes for the same number of optimizer steps, and compare test accuracy, the
loss's roughness, and the accuracy when the network normalises with the statistics of a batch of
that size (what BatchNorm does during training); LayerNorm (Ba et al. 2016) and GroupNorm
compute statistics per example and do not depend on the batch at all.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from deepstrata.labs.digits_data import digits_lab_data

NORMS = ("batch", "layer", "group", "none")
BATCH_SIZES = (2, 8, 32, 128)


@dataclass
class NormCell:
    """One (norm, batch size) cell: training-loss curve, test accuracy, stability."""

    norm: str
    batch_size: int
    losses: list[float] = field(default_factory=list)  # per step, in train mode
    test_accuracy: float = 0.0
    loss_roughness: float = 0.0  # std of step-to-step changes of the training loss (last half)
    batch_stat_accuracy: float = 0.0  # test accuracy normalising with test batches of batch_size
    diverged: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["losses"] = d["losses"][:: max(1, len(d["losses"]) // 200)]  # keep the JSON small
        return d


def fit_small_cnn(
    *, norm: str, batch_size: int, steps: int = 600, lr: float = 2e-3, widths: tuple[int, ...] = (8, 16, 32), seed: int = 0,
) -> tuple[torch.nn.Module, list[float], bool]:
    """Train `small_cnn(norm=...)` with Adam for `steps` steps at `batch_size` on digits.

    Returns (model in eval mode, per-step training losses, diverged). The default widths give
    three stages, so the last stage sees 2x2 maps: BatchNorm's statistics there come from
    4 * batch_size numbers per channel.
    """
    from deepstrata.models.cnn import small_cnn

    if norm not in NORMS:
        raise ValueError(f"unknown norm '{norm}' (choices: {', '.join(NORMS)})")
    if batch_size < 2 and norm == "batch":
        raise ValueError("BatchNorm needs batch_size >= 2 in training (one example has no batch variance)")
    data = digits_lab_data(seed)
    x, y = data.x_train, data.y_train
    torch.manual_seed(seed)
    model = small_cnn(num_classes=10, widths=list(widths), norm=norm, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    diverged = False
    model.train()
    batches: list[torch.Tensor] = []
    for _ in range(steps):
        if not batches:
            batches = [b for b in torch.randperm(len(x), generator=gen).split(batch_size) if len(b) == batch_size][::-1]
        idx = batches.pop()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses, diverged


def train_cell(
    *, norm: str, batch_size: int, steps: int = 600, lr: float = 2e-3, widths: tuple[int, ...] = (8, 16, 32), seed: int = 0,
) -> NormCell:
    """One cell of the sweep: fit, then test in eval mode and with batch statistics."""
    model, losses, diverged = fit_small_cnn(norm=norm, batch_size=batch_size, steps=steps, lr=lr, widths=widths, seed=seed)
    data = digits_lab_data(seed)
    cell = NormCell(norm, batch_size, losses=losses, diverged=diverged)
    diffs = torch.tensor(losses[len(losses) // 2 :]).diff()
    cell.loss_roughness = float(diffs.std()) if len(diffs) > 1 else math.nan
    with torch.no_grad():
        logits = model(data.x_test)
        cell.test_accuracy = float((logits.argmax(1) == data.y_test).float().mean()) if torch.isfinite(logits).all() else 0.0
    cell.batch_stat_accuracy = batch_statistics_accuracy(model, data.x_test, data.y_test, batch_size=batch_size)
    return cell


def batch_statistics_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> float:
    """Accuracy when every normalisation layer uses the statistics of the current batch of `batch_size`.

    This is how the network computes during training: with BatchNorm each prediction depends on
    the other examples in its batch, so small batches give noisy predictions; LayerNorm and
    GroupNorm give exactly their eval-mode answer. The model is copied, so its running
    statistics are left untouched.
    """
    import copy

    probe = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(0)
    correct = 0
    used = 0
    with torch.no_grad():
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            if len(idx) < max(2, batch_size) and batch_size > 1 and used:  # a short last batch would be an outlier
                continue
            correct += int((probe(x[idx]).argmax(1) == y[idx]).sum())
            used += len(idx)
    return correct / used


def sweep(
    *, norms: tuple[str, ...] = NORMS, batch_sizes: tuple[int, ...] = BATCH_SIZES, steps: int = 600, seed: int = 0
) -> list[NormCell]:
    """Every (norm, batch size) cell with the same number of optimizer steps."""
    return [train_cell(norm=n, batch_size=b, steps=steps, seed=seed) for n, b in itertools.product(norms, batch_sizes)]
