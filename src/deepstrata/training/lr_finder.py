"""The learning-rate range test (Smith 2017, arXiv:1506.01186, section 3.3).

Problem: the best learning rate spans orders of magnitude between tasks and models, and a grid
search over full runs to find it costs many runs.
Idea: in one short run, raise the LR exponentially from tiny to huge, one step per batch, and
record the (smoothed) loss; it is flat while the LR is too small, falls steeply in the useful
range and explodes past it. Suggest the LR where the loss falls fastest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import cycle
from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float = math.nan  # steepest descent of the smoothed loss against log LR
    min_loss_lr: float = math.nan
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("suggestion", "min_loss_lr", "stopped_early", "lrs", "losses", "raw_losses")}


def lr_range_test(
    task: Any,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    device: torch.device | str = "cpu",
) -> LRFinderResult:
    """Sweep the LR of every param group from min_lr to max_lr (keeping the groups' ratios)."""
    if not 0 < min_lr < max_lr:
        raise UserError(f"lr-find needs 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if num_steps < 10:
        raise UserError(f"lr-find needs at least 10 steps to see a curve, got {num_steps}")
    ratios = [g["lr"] / optimizer.param_groups[0]["lr"] for g in optimizer.param_groups]
    result = LRFinderResult()
    task.to(device).train()
    batches = cycle(loader)
    average, best = 0.0, math.inf
    for i in range(num_steps):
        lr = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        batch = next(batches)
        batch = [b.to(device) for b in batch] if isinstance(batch, (list, tuple)) else batch
        out = task.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        loss = float(out.loss.detach())
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing ** (i + 1))  # bias-corrected, as in Adam
        result.lrs.append(lr)
        result.raw_losses.append(loss)
        result.losses.append(smoothed)
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
            result.stopped_early = True
            break
    losses = np.array(result.losses)
    finite = np.isfinite(losses)
    log_lrs = np.log10(np.array(result.lrs))
    if finite.sum() >= 3:
        slope = np.gradient(losses[finite], log_lrs[finite])
        result.suggestion = float(np.array(result.lrs)[finite][int(np.argmin(slope))])
        result.min_loss_lr = float(np.array(result.lrs)[finite][int(np.argmin(losses[finite]))])
    return result


def plot(result: LRFinderResult, path: Any) -> None:
    """Loss against LR (log scale) with the suggestion marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.raw_losses, alpha=0.3, label="loss")
    ax.plot(result.lrs, result.losses, label="smoothed loss")
    if math.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="red", linestyle="--", label=f"suggested {result.suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in result.losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.legend()
    ax.set_title("LR range test")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
